#include "scoreflow/run.h"

#include <ATen/ATen.h>

#include "scoreflow/error.h"

namespace scoreflow {

SampleResult run_sampler(const Sampler& sampler, std::shared_ptr<const Model> model, const SampleJob& job,
                         const BatchCallback& on_batch, const StepCallback& on_step) {
  check_grid(sampler, job.sigmas);
  const auto& shape = model->metadata().shape;
  const int64_t n = static_cast<int64_t>(job.seeds.size());
  if (n == 0) fail("no seeds to sample");
  if (job.batch < 1) fail("--batch must be >= 1, got ", job.batch);
  if (job.init_noise.defined()) {
    std::vector<int64_t> want{n};
    want.insert(want.end(), shape.begin(), shape.end());
    if (job.init_noise.sizes() != c10::IntArrayRef(want))
      fail("--init-noise has shape ", job.init_noise.sizes(), ", expected ", c10::IntArrayRef(want), " (one row per seed)");
  }
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  SampleResult result;
  for (int64_t begin = 0; begin < n; begin += job.batch) {
    const int64_t count = std::min<int64_t>(job.batch, n - begin);
    std::vector<uint64_t> seeds(job.seeds.begin() + begin, job.seeds.begin() + begin + count);
    NoiseSource noise(seeds);
    torch::Tensor eps = noise.randn(shape);  // always drawn, so later draws do not depend on --init-noise
    if (job.init_noise.defined()) eps = job.init_noise.narrow(0, begin, count).to(torch::kFloat32);
    torch::Tensor x = (eps * job.sigmas.front()).to(job.device);
    Conditioning cond;
    if (job.labels.defined()) cond.labels = job.labels.narrow(0, begin, count).to(job.device);
    cond.guidance = job.guidance;
    Denoiser denoiser(model, cond);
    x = sampler.sample(denoiser, x, job.sigmas, noise, on_step);
    denoiser.check_finite();
    // The state can go bad with finite network outputs (a step that overflows); one flag per batch
    // keeps the loop free of host syncs.
    if (!torch::isfinite(x).all().item<bool>())
      fail("sampler ", sampler.name(), " produced NaN or Inf samples for seeds ", seeds.front(), "..", seeds.back(),
           " although every network output was finite (grid from sigma=", job.sigmas.front(), " to ", job.sigmas.back(), ")");
    result.nfe = denoiser.nfe();
    out.push_back(x.to(torch::kCPU, torch::kFloat32));
    if (on_batch) on_batch(begin + count, n);
  }
  result.samples = torch::cat(out);
  return result;
}

}  // namespace scoreflow
