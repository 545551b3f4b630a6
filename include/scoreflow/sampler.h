#pragma once
/// Samplers integrate the probability-flow ODE dx/dσ = (x − D(x, σ))/σ (or its SDE) down a σ grid
/// (docs/design.md §4). A sampler is a value: options are checked in its constructor, sample() is const,
/// multistep history is local, and randomness comes only from the per-seed NoiseSource.
#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "scoreflow/final_step.h"
#include "scoreflow/model.h"

namespace scoreflow {

/// Per-seed Gaussian noise: sample b of a batch draws only from a generator seeded by seeds[b], so
/// a sample is the same whatever the batch size or its position in the batch (CPU generators).
class NoiseSource {
 public:
  explicit NoiseSource(const std::vector<uint64_t>& seeds);
  /// [B, ...shape] standard normal in x's dtype on x's device, row b from generator b.
  torch::Tensor randn_like(const torch::Tensor& x);
  /// [B, ...sample_shape] float32 on the CPU.
  torch::Tensor randn(c10::IntArrayRef sample_shape);
  size_t size() const { return gens_.size(); }

 private:
  std::vector<at::Generator> gens_;
};

/// Called after each step: (step index i, number of steps, σ_{i+1}).
using StepCallback = std::function<void(int, int, double)>;

/// d = (x − D)/σ, the PF-ODE derivative in σ-space.
inline torch::Tensor to_d(const torch::Tensor& x, double sigma, const torch::Tensor& denoised) {
  return (x - denoised) / sigma;
}

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual std::string name() const = 0;
  /// Convergence order on the PF-ODE (declared; the test suite checks it).
  virtual int order() const = 0;
  virtual bool stochastic() const { return false; }
  /// Network evaluations for a grid of `steps` intervals ending at σ = 0.
  virtual int64_t nfe(int steps) const = 0;
  /// Network evaluations for a grid of `steps` intervals ending at σ_N > 0. The same as nfe() for
  /// samplers whose step into 0 costs what any other step costs; methods that save a call there
  /// (Heun's and DPM-Solver-2's Euler step, AMED's skipped σ_min → 0 interval) override it.
  virtual int64_t nfe_above_zero(int steps) const { return nfe(steps); }
  /// nfe() under a final-step choice: zero → nfe(steps), none → nfe_above_zero(steps), denoise →
  /// one more than none.
  int64_t nfe_for(int steps, FinalStep final) const;
  /// The final step a run uses when none is asked for: zero, except AMED (the paper's none).
  virtual FinalStep default_final() const { return FinalStep::Zero; }
  /// Throws Error when the sampler cannot run under `final` (an AMED predictor trained for another).
  virtual void check_final(FinalStep) const {}
  /// Fewest steps the method is defined for.
  virtual int min_steps() const { return 1; }
  /// The most steps whose nfe_for(steps, final) fits in `nfe`; throws Error naming the minimum NFE
  /// if none does.
  int steps_for_nfe(int64_t nfe, FinalStep final = FinalStep::Zero) const;
  /// Runs the sampler: x holds x at σ_0 = sigmas[0] ([B, ...shape]); returns x at sigmas.back().
  virtual torch::Tensor sample(const Denoiser& denoise, torch::Tensor x, const std::vector<double>& sigmas,
                               NoiseSource& noise, const StepCallback& callback = {}) const = 0;
};

/// Checks a grid for sample(): at least min_steps + 1 points, strictly decreasing, last ≥ 0.
void check_grid(const Sampler& sampler, const std::vector<double>& sigmas);

}  // namespace scoreflow
