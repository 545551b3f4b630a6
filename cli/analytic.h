#pragma once
// What the Analytic-DPM commands share (cli/analytic.cpp: estimate-gamma; cli/analytic_nll.cpp:
// trajectory, nll): the dataset flags.
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "scoreflow/data.h"
#include "scoreflow/latent.h"

namespace scoreflow::cli {

struct DataOptions {
  std::string data;
  bool resize = false, skip_bad = false;
  void add(CLI::App& app) {
    app.add_option("--data", data, "dataset: image folder, idx/idx.gz, .npy or .npz")->required();
    app.add_flag("--resize", resize,
                 "resize + centre-crop items to the model's shape where its data_prep does not make them fit");
    app.add_flag("--skip-bad", skip_bad, "skip unreadable files (counted) instead of failing");
  }
  /// The dataset in the model's sample space (a latent model's encoder applied to images).
  std::unique_ptr<io::Dataset> open(std::shared_ptr<const Model> model) const {
    ModelDataOptions o;
    o.resize = resize;
    o.skip_bad = skip_bad;
    return open_model_dataset(data, std::move(model), o);
  }
};

/// trajectory and nll (cli/analytic_nll.cpp).
void register_trajectory(CLI::App& app);
void register_nll(CLI::App& app);

}  // namespace scoreflow::cli
