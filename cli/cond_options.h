#pragma once
// The conditioning, guidance and decoder flags shared by the sampling commands: --cond,
// --cond-rows, --uncond, --guidance-interval, --guidance-rescale, --decoder, --decode-batch.
// Parsing only: the checks and the work are the library's (scoreflow/condition_inputs.h, latent.h).
#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "scoreflow/condition_inputs.h"
#include "scoreflow/latent.h"
#include "scoreflow/run.h"

namespace scoreflow::cli {

/// The ConditionInputs fields (cond, cond_rows, uncond, interval, rescale) and the decoder's.
struct CondOptions : ConditionInputs {
  std::string decoder;
  int decode_batch = 16;
  /// The flags; `outputs` false leaves out --decoder/--decode-batch (commands that write no images).
  void add(CLI::App& app, bool outputs = true);
  /// apply_condition_inputs, after checking --decode-batch: every check before any network call.
  void apply(const Model& model, SampleJob& job, int64_t total, int64_t begin, int64_t end) const;
  /// The decoder for outputs: --decoder, else the model's own (or the identity).
  ImageDecoder image_decoder(std::shared_ptr<const Model> model) const;
  /// Identifies the inputs in a resume manifest: file hashes and the flags.
  std::string fingerprint() const;
};

/// --cond/--uncond of the dataset commands (estimate-gamma, nll, eval score-matching, eval wbound):
/// parsing only; item_conditions (scoreflow/conditioning.h) decides and checks.
struct DataCondOptions {
  std::string cond, uncond;
  void add(CLI::App& app);
  /// What `model` is conditioned on for `items` dataset items; prints its one `note:` line.
  ItemConditions resolve(const Model& model, int64_t items) const;
};

/// --class (field `label`): scoreflow::class_labels.
using scoreflow::class_labels;

/// An npz's arrays as tensors (name → tensor); `field` names the input in messages.
std::map<std::string, torch::Tensor> read_arrays(const std::string& path, const char* field);

}  // namespace scoreflow::cli
