#include "scoreflow/registry.h"

namespace scoreflow {
namespace {

/// Euler's method on the PF-ODE (Karras et al. 2022, Algorithm 2 without the correction).
class Euler : public Sampler {
 public:
  std::string name() const override { return "euler"; }
  int order() const override { return 1; }
  int64_t nfe(int steps) const override { return steps; }

  torch::Tensor sample(const Denoiser& denoise, torch::Tensor x, const std::vector<double>& sigmas, NoiseSource&,
                       const StepCallback& callback) const override {
    check_grid(*this, sigmas);
    const int n = static_cast<int>(sigmas.size()) - 1;
    for (int i = 0; i < n; ++i) {
      const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
      torch::Tensor d = to_d(x, sigma, denoise(x, sigma));
      // Euler step.
      x = x + (sigma_next - sigma) * d;
      if (callback) callback(i, n, sigma_next);
    }
    return x;
  }
};

}  // namespace

std::unique_ptr<Sampler> make_euler(const KeyValueArgs&) { return std::make_unique<Euler>(); }

}  // namespace scoreflow
