#include "scoreflow/run.h"

#include <ATen/ATen.h>

#include "scoreflow/error.h"

namespace scoreflow {

void check_final_grid(const Sampler& sampler, const std::vector<double>& sigmas, FinalStep final) {
  sampler.check_final(final);
  if (final != FinalStep::Zero && !sigmas.empty() && !(sigmas.back() > 0))
    fail("final '", final_step_name(final), "' needs a grid ending above 0 (at sigma_min); this one ends at ",
         sigmas.back());
}

namespace {
/// numpy's names for the integer types (c10 calls int64 "Long").
std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kByte:
      return "uint8";
    case torch::kChar:
      return "int8";
    case torch::kShort:
      return "int16";
    case torch::kInt:
      return "int32";
    case torch::kLong:
      return "int64";
    case torch::kBool:
      return "bool";
    default:
      return c10::toString(t);
  }
}
}  // namespace

void check_init_noise(const torch::Tensor& noise, int64_t n, const std::vector<int64_t>& shape) {
  if (!noise.is_floating_point())
    fail(Field{"init_noise"}, " has dtype ", dtype_name(noise.scalar_type()),
         "; initial noise must be floating point (float32/float64 standard normal draws)");
  std::vector<int64_t> want{n};
  want.insert(want.end(), shape.begin(), shape.end());
  if (noise.sizes() != c10::IntArrayRef(want))
    fail(Field{"init_noise"}, " has shape ", noise.sizes(), ", expected ", c10::IntArrayRef(want), " (one row per seed)");
}

SampleResult run_sampler(const Sampler& sampler, std::shared_ptr<const Model> model, const SampleJob& job,
                         const BatchCallback& on_batch, const StepCallback& on_step) {
  check_grid(sampler, job.sigmas);
  check_final_grid(sampler, job.sigmas, job.final);
  const auto& shape = model->metadata().shape;
  const int64_t n = static_cast<int64_t>(job.seeds.size());
  if (n == 0) fail("no seeds to sample");
  if (job.batch < 1) fail(Field{"batch"}, " must be >= 1, got ", job.batch);
  if (job.init_noise.defined()) check_init_noise(job.init_noise, n, shape);
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
    // The state is checked (by the denoiser) as it enters every network call, so a blow-up is
    // reported with its step and sigma; the state after the last step is checked here.
    const int steps = static_cast<int>(job.sigmas.size()) - 1;
    denoiser.begin_steps(sampler.name(), steps);
    const StepCallback track = [&](int i, int n, double sigma_next) {
      denoiser.step_done(i);
      if (on_step) on_step(i, n, sigma_next);
    };
    x = sampler.sample(denoiser, x, job.sigmas, noise, track);
    if (job.final == FinalStep::Denoise) x = denoiser(x, job.sigmas.back());
    denoiser.check_finite();
    // One flag per batch keeps the loop free of host syncs.
    if (!torch::isfinite(x).all().item<bool>())
      fail("sampler ", sampler.name(), ": the state became NaN or Inf in its last step (", steps, " of ", steps,
           ", sigma ", job.sigmas[steps - 1], " -> ", job.sigmas.back(), ") for seeds ", seeds.front(), "..",
           seeds.back(), "; every network output was finite");
    result.nfe = denoiser.nfe();
    out.push_back(x.to(torch::kCPU, torch::kFloat32));
    if (on_batch) on_batch(begin + count, n);
  }
  result.samples = torch::cat(out);
  return result;
}

}  // namespace scoreflow
