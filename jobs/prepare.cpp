// A sampling job from plain settings (scoreflow/jobs/prepare.h).
#include "scoreflow/jobs/prepare.h"

#include "scoreflow/error.h"
#include "scoreflow/registry.h"
#include "scoreflow/seeds.h"

namespace scoreflow::jobs {

PreparedSampleJob prepare_sample_job(const SamplingChoice& choice, const Model& model, int batch, const Shard* shard) {
  PreparedSampleJob p;
  // The Γ file feeds both the optimal trajectory and the Analytic-DPM samplers' gamma= arg.
  p.sampler_args = choice.sampler_args;
  const std::string& gamma = choice.grid.gamma;
  if (!gamma.empty() && (choice.sampler == "analytic_ddpm" || choice.sampler == "analytic_ddim") &&
      p.sampler_args.find("gamma=") == std::string::npos)
    p.sampler_args += (p.sampler_args.empty() ? "gamma=" : ",gamma=") + gamma;
  p.sampler = make_sampler(choice.sampler, p.sampler_args);
  p.final = choose_final(choice.final, *p.sampler, p.sampler_args);
  p.all_seeds = parse_seeds(choice.seeds);
  const auto total = static_cast<int64_t>(p.all_seeds.size());
  p.end = total;
  if (batch < 1) fail(Field{"batch"}, " must be >= 1, got ", batch);
  if (shard) std::tie(p.begin, p.end) = shard_range(total, batch, *shard);
  p.grid = choose_grid(choice.grid, model, *p.sampler, p.sampler_args, p.final);

  SampleJob& job = p.job;
  job.sigmas = p.grid.sigmas;
  job.final = p.final;
  job.seeds.assign(p.all_seeds.begin() + p.begin, p.all_seeds.begin() + p.end);
  job.batch = batch;
  job.device = model.device();
  job.labels = class_labels(choice.label, model, job.seeds);
  job.guidance = choice.guidance;
  apply_condition_inputs(model, choice.cond, job, total, p.begin, p.end);
  if (!choice.init_noise.empty())
    job.init_noise =
        load_init_noise(choice.init_noise, total, model.metadata().shape).narrow(0, p.begin, p.end - p.begin);
  return p;
}

SampleJob prepare_conditioning(const SamplingChoice& choice, const Model& model, std::vector<uint64_t> seeds,
                               bool unconditional, std::string* note) {
  SampleJob job;
  job.seeds = std::move(seeds);
  job.guidance = choice.guidance;
  job.labels = class_labels(choice.label, model, job.seeds);
  if (unconditional && choice.cond.cond.empty()) {
    const std::string& uncond = choice.cond.uncond;
    const std::string text = use_unconditional_input(
        model, job, uncond.empty() ? std::map<std::string, torch::Tensor>{} : read_condition_arrays(uncond, "uncond"));
    if (note) *note = text;
  }
  const auto n = static_cast<int64_t>(job.seeds.size());
  apply_condition_inputs(model, choice.cond, job, n, 0, n);
  return job;
}

}  // namespace scoreflow::jobs
