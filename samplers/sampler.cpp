#include "scoreflow/sampler.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "scoreflow/error.h"

namespace scoreflow {

NoiseSource::NoiseSource(const std::vector<uint64_t>& seeds) {
  for (uint64_t seed : seeds) gens_.push_back(at::make_generator<at::CPUGeneratorImpl>(seed));
}

torch::Tensor NoiseSource::randn(c10::IntArrayRef sample_shape) {
  std::vector<torch::Tensor> rows;
  rows.reserve(gens_.size());
  for (at::Generator& g : gens_) rows.push_back(at::randn(sample_shape, g, torch::dtype(torch::kFloat32)));
  return torch::stack(rows);
}

torch::Tensor NoiseSource::randn_like(const torch::Tensor& x) {
  if (x.size(0) != static_cast<int64_t>(gens_.size()))
    fail("noise source has ", gens_.size(), " generators for a batch of ", x.size(0));
  if (x.device().is_cpu()) return randn(x.sizes().slice(1)).to(x.scalar_type());
  // For a GPU state, draw into pinned host memory and copy without blocking: the host goes on
  // queueing the step while the copy runs (the caching host allocator keeps the buffer alive
  // until the copy has finished), so stochastic samplers add no per-step synchronisation.
  torch::Tensor host = randn(x.sizes().slice(1)).pin_memory();
  return host.to(x.device(), x.scalar_type(), /*non_blocking=*/true);
}

int64_t Sampler::nfe_for(int steps, FinalStep final) const {
  switch (final) {
    case FinalStep::Zero:
      return nfe(steps);
    case FinalStep::None:
      return nfe_above_zero(steps);
    case FinalStep::Denoise:
      return nfe_above_zero(steps) + 1;
  }
  return nfe(steps);
}

int Sampler::steps_for_nfe(int64_t budget, FinalStep final) const {
  const int64_t least = nfe_for(min_steps(), final);
  if (least > budget)
    fail(name(), " needs at least ", least, " NFE (", min_steps(), " steps, final ", final_step_name(final), "); ",
         Field{"nfe"}, " ", budget, " is too small");
  int steps = min_steps();
  while (steps < 100000 && nfe_for(steps + 1, final) <= budget) ++steps;
  return steps;
}

void check_grid(const Sampler& sampler, const std::vector<double>& sigmas) {
  const int steps = static_cast<int>(sigmas.size()) - 1;
  if (steps < sampler.min_steps()) fail(sampler.name(), " needs at least ", sampler.min_steps(), " steps, got ", steps);
  for (size_t i = 0; i + 1 < sigmas.size(); ++i)
    if (!(sigmas[i + 1] < sigmas[i]) || !(sigmas[i + 1] >= 0))
      fail("sigma grid is not strictly decreasing to >= 0 at position ", i + 1);
}

}  // namespace scoreflow
