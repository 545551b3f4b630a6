#include <cmath>

#include "samplers/common.h"
#include "samplers/typed.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"

namespace scoreflow {
namespace {

/// DDPM ancestral sampling (Ho et al. 2020) in σ-space. The mean is the posterior mean
/// μ̃(x_t, x̂0); the variance is β̃ (σ_up² = σ'²(σ² − σ'²)/σ²) or β (the "large" choice,
/// β_{t|s}/ᾱ_s = (1 + σ'²)(σ² − σ'²)/(1 + σ²) in σ-space).
class Ddpm : public Sampler {
 public:
  explicit Ddpm(const DdpmOptions& options)
      : variance_(options.variance() == DdpmVariance::Beta ? "beta" : "beta_tilde"), afs_(options.afs()) {}
  std::string name() const override { return "ddpm"; }
  int order() const override { return 1; }
  bool stochastic() const override { return true; }
  int64_t nfe(int steps) const override { return steps - afs_; }

  torch::Tensor sample(const Denoiser& denoise, torch::Tensor x, const std::vector<double>& sigmas, NoiseSource& noise,
                       const StepCallback& callback) const override {
    check_grid(*this, sigmas);
    const int n = static_cast<int>(sigmas.size()) - 1;
    detail::ModelCalls model(denoise, afs_);
    for (int i = 0; i < n; ++i) {
      const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
      const double s2 = sigma * sigma, sn2 = sigma_next * sigma_next;
      const double tilde2 = sn2 * (s2 - sn2) / s2;  // posterior variance β̃ in σ-space
      const double sigma_down = std::sqrt(sn2 - tilde2);
      const double var = variance_ == "beta" ? (1 + sn2) * (s2 - sn2) / (1 + s2) : tilde2;
      torch::Tensor d = to_d(x, sigma, model(x, sigma));
      // Posterior mean, then the step's noise (none into σ = 0).
      x = x + (sigma_down - sigma) * d;
      if (sigma_next > 0) x = x + std::sqrt(var) * noise.randn_like(x);
      if (callback) callback(i, n, sigma_next);
    }
    return x;
  }

 private:
  std::string variance_;
  bool afs_;
};

}  // namespace

std::unique_ptr<Sampler> detail::make_ddpm(const DdpmOptions& options) { return std::make_unique<Ddpm>(options); }

std::unique_ptr<Sampler> make_ddpm(const KeyValueArgs& args) {
  const std::string variance = args.get_string("variance", "beta_tilde");
  const bool afs = detail::read_afs(args);
  if (variance != "beta_tilde" && variance != "beta")
    fail("ddpm: unknown variance '", variance, "'; valid: beta_tilde, beta");
  return detail::make_ddpm(
      DdpmOptions().variance(variance == "beta" ? DdpmVariance::Beta : DdpmVariance::BetaTilde).afs(afs));
}

}  // namespace scoreflow
