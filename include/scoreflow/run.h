#pragma once
/// Running a sampler over a list of seeds in batches: per-seed initial noise (or a given noise
/// array), labels, guidance, device placement.
#include <torch/types.h>

#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "scoreflow/conditioning.h"
#include "scoreflow/model.h"
#include "scoreflow/sampler.h"

namespace scoreflow {

struct SampleJob {
  std::vector<double> sigmas;   ///< the grid, σ_0 first, ending at 0 (final zero) or at σ_min > 0
  std::vector<uint64_t> seeds;  ///< one sample per seed
  int batch = 64;
  torch::Device device = torch::kCPU;
  torch::Tensor init_noise;  ///< optional [N, ...shape] standard normal replacing the seeded noise
  torch::Tensor labels;      ///< optional [N] int64 class labels
  double guidance = 1.0;
  /// Conditioning inputs (metadata "conditions"): the tables and each sample's row in them ([N]).
  ConditionTables cond;
  std::vector<int64_t> cond_rows;
  /// Unconditional tables for guidance (1 row, or cond.rows rows used by cond_rows); empty = the
  /// metadata's "uncond".
  ConditionTables uncond;
  double guidance_lo = 0, guidance_hi = std::numeric_limits<double>::infinity();  ///< guidance interval in σ
  double guidance_rescale = 0;                                                    ///< φ (Conditioning::rescale)

  /// zero: the grid ends in 0; none: it ends at σ_min and x there is returned; denoise: D(x, σ_min).
  FinalStep final = FinalStep::Zero;
};

struct SampleResult {
  torch::Tensor samples;  ///< [N, ...shape] float32 on the CPU: x at the grid's end, or D there
  int64_t nfe = 0;        ///< network evaluations per sample, the final denoise included
};

/// (finished samples, total samples) after each batch; (step, steps) inside a batch.
using BatchCallback = std::function<void(int64_t done, int64_t total)>;

/// Throws Error when `final` does not fit the grid (none and denoise need σ_N > 0) or the sampler
/// (Sampler::check_final).
void check_final_grid(const Sampler& sampler, const std::vector<double>& sigmas, FinalStep final);
/// Checks initial noise for `n` samples of `shape`: a floating-point array (standard normal noise;
/// integers cannot be) of shape [n, ...shape]. Throws Error naming the field init_noise and the
/// dtype or shape found.
void check_init_noise(const torch::Tensor& noise, int64_t n, const std::vector<int64_t>& shape);
/// Initial noise for `n` samples of `shape` from the array 'noise' of the .npz at `path`: floating
/// point (float32 or float64 draws), of shape [n, ...shape], every value finite. Throws Error naming
/// the field init_noise, the path, and the dtype or shape found.
torch::Tensor load_init_noise(const std::string& path, int64_t n, const std::vector<int64_t>& shape);

/// Samples `job.seeds` with `sampler`. Sample i starts from σ_0·ε_i, ε_i drawn from the generator
/// seeded by seeds[i] (or job.init_noise[i]); later noise draws come from the same generator.
/// Checks the job's conditioning against the model before any network call: tables present exactly
/// when the model declares conditions, one row index (and one label, when labels are given) per seed
/// inside the tables, guidance settings
/// (interval lo <= hi, rescale in [0, 1]) and an unconditional source when guidance needs one.
void check_job_conditioning(const Model& model, const SampleJob& job);
/// For a conditional model sampled without conditions (job.cond empty): every seed gets the
/// model's unconditional input (item_conditions: the `uncond` arrays, 1 row or one per seed, else
/// the metadata's uncond) as its conditions. Returns the `note:` sentence; a model without
/// conditions or a job that has them is left as it is (returns "").
std::string use_unconditional_input(const Model& model, SampleJob& job,
                                    const std::map<std::string, torch::Tensor>& uncond = {});
/// The Conditioning of samples [begin, begin + count) of `job` on `device`.
Conditioning batch_conditioning(const SampleJob& job, int64_t begin, int64_t count, const torch::Device& device);
/// The Conditioning of the samples `samples` of `job` (indices into its seeds, in any order, e.g. a
/// random minibatch) on `device`: sample k of the batch gets the labels and rows of job sample
/// samples[k]. Throws Error naming the field `samples` for an index outside the job.
Conditioning samples_conditioning(const SampleJob& job, const std::vector<int64_t>& samples,
                                  const torch::Device& device);

SampleResult run_sampler(const Sampler& sampler, std::shared_ptr<const Model> model, const SampleJob& job,
                         const BatchCallback& on_batch = {}, const StepCallback& on_step = {});

}  // namespace scoreflow
