#pragma once
/// Conditioning as a user names it: the files and texts of a run (condition tables, their rows,
/// unconditional tables, the guidance interval and rescale, a class choice), resolved into a
/// SampleJob's or a dataset job's conditioning (scoreflow/conditioning.h) and checked before any
/// network call. Errors name the fields of ConditionInputs ("cond_rows", "guidance_interval", ...).
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "scoreflow/conditioning.h"
#include "scoreflow/run.h"

namespace scoreflow {

struct ConditionInputs {
  std::string cond;       ///< .npz with one array per condition, [P, ...shape] ("" none)
  std::string cond_rows;  ///< table row per sample, "0,0,1,2" or "0-3" (one per sample, or one for all); "" i mod P
  std::string uncond;     ///< .npz of unconditional values for guidance, 1 or P rows ("" the metadata's)
  std::string interval;   ///< "lo,hi": guidance only for σ in [lo, hi] (hi may be inf); "" everywhere
  double rescale = 0;     ///< guidance rescale φ in [0, 1] (Lin et al. 2024)
};

/// "0,0,1" or "0-3,7" → the row indices; throws Error naming the field cond_rows and the item.
std::vector<int64_t> parse_condition_rows(const std::string& text);

/// "lo,hi" → (lo, hi), hi may be "inf"; throws Error naming the field guidance_interval.
std::pair<double, double> parse_guidance_interval(const std::string& text);

/// Fills job.cond, job.uncond, job.cond_rows (the rows of samples [begin, end) of `total`, rows
/// counted over all samples) and the guidance interval and rescale from `in`, then checks the
/// job's conditioning against `model` (check_job_conditioning). Every check runs here, before any
/// network call; errors name the fields (cond, cond_rows, uncond, guidance_interval, ...).
void apply_condition_inputs(const Model& model, const ConditionInputs& in, SampleJob& job, int64_t total, int64_t begin,
                            int64_t end);

/// Identifies the inputs in a resume manifest: the files' hashes and the texts ("-" for no file).
std::string condition_inputs_fingerprint(const ConditionInputs& in);

/// item_conditions with the arrays read from the .npz files `cond` and `uncond` ("" none).
ItemConditions item_conditions_from_files(const Model& model, int64_t items, const std::string& cond,
                                          const std::string& uncond);

/// Class labels for `seeds`: `label` (an integer) for every seed, or "random" (seed mod
/// num_classes); undefined when `label` is empty. Throws Error naming the field `label` for a
/// model without classes or a label that is not an integer.
torch::Tensor class_labels(const std::string& label, const Model& model, const std::vector<uint64_t>& seeds);

}  // namespace scoreflow
