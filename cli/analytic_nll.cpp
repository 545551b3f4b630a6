// scoreflow trajectory | nll — Analytic-DPM (Bao et al. 2022): a K-step trajectory and its cost, and the
// negative log-likelihood along one (scoreflow/nll.h, scoreflow/jobs/analytic.h); this reads flags.
#include <cstdio>

#include "cli/analytic.h"
#include "cli/common.h"
#include "cli/cond_options.h"
#include "scoreflow/gamma_estimation.h"
#include "scoreflow/jobs/analytic.h"
#include "scoreflow/nll.h"

namespace scoreflow::cli {
namespace {

std::unique_ptr<GammaTable> load_gamma(const std::string& path, const Model& model) {
  if (path.empty()) return nullptr;
  return std::make_unique<GammaTable>(load_gamma_for(model, path));
}

}  // namespace

void register_trajectory(CLI::App& app) {
  auto* sub = app.add_subcommand("trajectory", "print an even/quadratic/optimal K-step trajectory and its cost");
  static ModelOptions model_opts;
  static std::string gamma_path, kind = "optimal";
  static int64_t steps = 10;
  static bool as_json = false;
  model_opts.add(*sub, false);
  sub->add_option("--gamma", gamma_path, "Gamma file from estimate-gamma");
  sub->add_option("--steps", steps, "K, the number of timesteps")->capture_default_str();
  sub->add_option("--trajectory", kind, "even | quadratic | optimal")->capture_default_str();
  sub->add_flag("--json", as_json, "print one JSON document");
  set_action(sub, [] {
    auto model = model_opts.open();
    const DiscreteChain chain = chain_of(*model);
    auto gamma = load_gamma(gamma_path, *model);
    const nlohmann::json doc = jobs::trajectory_report(chain, kind, steps, gamma.get());
    if (as_json) return print_json(doc);
    std::fputs(jobs::trajectory_text(doc).c_str(), stdout);
  });
}

void register_nll(CLI::App& app) {
  auto* sub = app.add_subcommand("nll", "negative log-likelihood (bits/dim) of a discrete VP model along a trajectory");
  static ModelOptions model_opts;
  static DataOptions data_opts;
  static DataCondOptions cond_opts;
  static std::string gamma_path, kind = "even", variance = "analytic";
  static int64_t steps = 10;
  static NllJob job;  // --num-images, --batch, --seed
  static bool as_json = false, no_clip = false;
  model_opts.add(*sub);
  data_opts.add(*sub);
  cond_opts.add(*sub);
  sub->add_option("--gamma", gamma_path, "Gamma file (needed for --variance analytic and --trajectory optimal)");
  sub->add_option("--steps", steps, "K, the number of timesteps")->capture_default_str();
  sub->add_option("--trajectory", kind, "even | quadratic | optimal")->capture_default_str();
  sub->add_option("--variance", variance, "analytic | ddpm-beta | ddpm-tilde")->capture_default_str();
  sub->add_option("--num-images", job.num_images, "images (the first ones of --data)")->capture_default_str();
  sub->add_option("--batch", job.batch, "images per network call")->capture_default_str();
  sub->add_option("--seed", job.seed, "noise seed")->capture_default_str();
  sub->add_flag("--no-clip-x0", no_clip, "do not clamp x0_hat to the data range");
  sub->add_flag("--json", as_json, "print one JSON document with the per-term breakdown");
  set_action(sub, [] {
    auto start = std::chrono::steady_clock::now();
    auto model = model_opts.open();
    const DiscreteChain chain = chain_of(*model);
    auto gamma = load_gamma(gamma_path, *model);
    auto data = data_opts.open(model);
    job.trajectory = make_trajectory(kind, chain, steps, gamma.get());
    job.variance = parse_reverse_variance(variance);
    job.clip_x0 = !no_clip;
    job.conditions = cond_opts.resolve(*model, job.num_images);
    Progress progress("nll", job.num_images, "images");
    NllResult r = compute_nll(*model, *data, gamma.get(), job, [&](int64_t d, int64_t) { progress.update(d); });
    progress.finish();
    if (as_json) {
      nlohmann::json doc = jobs::nll_report(r, job, kind, variance);
      doc.update({{"model", model->name()}, {"dataset", data->describe()}, {"wall_seconds", seconds_since(start)}});
      return print_json(doc);
    }
    std::fputs(jobs::nll_text(r, kind, steps, variance).c_str(), stdout);
  });
}

}  // namespace scoreflow::cli
