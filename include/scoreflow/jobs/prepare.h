#pragma once
/// A sampling job from plain settings, as `scoreflow sample` and `eval fid --model` are given them:
/// the sampler, its final step, this shard's seeds, the grid (choose_grid), class labels, guidance,
/// conditioning (scoreflow/condition_inputs.h) and initial noise, every input checked before any
/// network call. Errors name the fields (sampler_args, final, seeds, batch, steps, label, cond, ...).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "scoreflow/condition_inputs.h"
#include "scoreflow/jobs.h"

namespace scoreflow::jobs {

struct SamplingChoice {
  std::string sampler = "heun";
  std::string sampler_args;  ///< k=v,... (the analytic samplers get gamma=grid.gamma unless given)
  std::string final;         ///< zero | none | denoise; "" the sampler's own default (choose_final)
  std::string seeds;         ///< "0-63" or "1,5,9-12" (parse_seeds): one sample each
  GridChoice grid;
  std::string label;       ///< class for every sample, or "random" (class_labels); "" none
  std::string init_noise;  ///< .npz with 'noise' [N, ...shape] replacing the seeded noise; "" none
  double guidance = 1.0;   ///< classifier-free guidance weight (1 = plain conditional)
  ConditionInputs cond;
};

/// What prepare_sample_job made: the sampler and the job for seeds [begin, end) of all_seeds.
struct PreparedSampleJob {
  std::unique_ptr<Sampler> sampler;
  std::string sampler_args;  ///< as the sampler got them (gamma= added for the analytic samplers)
  FinalStep final = FinalStep::Zero;
  ChosenGrid grid;
  std::vector<uint64_t> all_seeds;
  int64_t begin = 0, end = 0;
  SampleJob job;
};

/// The sampler and job on `model`: `shard`'s whole batches of `batch` seeds (all of them without
/// one), on model.device().
PreparedSampleJob prepare_sample_job(const SamplingChoice& choice, const Model& model, int batch,
                                     const Shard* shard = nullptr);

/// The conditioning of samples with `seeds`, as prepare_sample_job gives a job: labels, guidance and
/// conditions, checked. `unconditional`: a conditional model given no cond uses its unconditional
/// input (use_unconditional_input, with choice.cond.uncond), the note on it in *note.
SampleJob prepare_conditioning(const SamplingChoice& choice, const Model& model, std::vector<uint64_t> seeds,
                               bool unconditional = false, std::string* note = nullptr);

}  // namespace scoreflow::jobs
