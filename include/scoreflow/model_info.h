#pragma once
/// `scoreflow info` as a library call: a model's metadata, schedule range, conditions and decoder,
/// checked by one dry forward (and one dry decode for a latent model), as JSON and as text.
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "scoreflow/cpu_fast_path.h"
#include "scoreflow/model.h"

namespace scoreflow {

struct ModelInfo {
  /// model, summary, prediction, schedule, sigma_min/max, time_input, shape, data_range,
  /// num_classes, head, features, conditions, decoded_image_shape, dry_forward, metadata (the
  /// archive's JSON, when any) and cpu_path (when a CPU path note was given).
  nlohmann::json json;
  std::string text;  ///< the same as aligned "key  value" lines, newline-terminated
};

/// Runs `model` once on a batch of 2 at σ = sqrt(σ_min·σ_max), on zero conditions (one row shared by
/// the batch), and decodes the output once for a latent model; throws when the output is not finite
/// or has the wrong shape. `cpu_path_note` (cpu_path_note()) adds the CPU fast path's state; "" leaves
/// it out.
ModelInfo model_info(const std::shared_ptr<const Model>& model, const std::string& cpu_path_note = "");

/// One line saying which module runs `model` on the CPU as opened with `load`: "" where the fast
/// path does not act (has_cpu_fast_path: builtins, .pt2 packages, CUDA models), `disabled` when the load did not ask
/// for the fast path (LoadOptions::optimize off).
std::string cpu_path_note(const Model& model, const LoadOptions& load,
                          const std::string& disabled = "plain module (LoadOptions::optimize off)");

}  // namespace scoreflow
