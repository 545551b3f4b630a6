#include <cmath>

#include "samplers/common.h"
#include "samplers/steps.h"
#include "samplers/typed.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"

namespace scoreflow {
namespace {

/// Heun's 2nd-order method with optional churn: Algorithm 2 of Karras et al. (2022).
class Heun : public Sampler {
 public:
  explicit Heun(const HeunOptions& options)
      : s_churn_(options.s_churn()),
        s_tmin_(options.s_tmin()),
        s_tmax_(options.s_tmax()),
        s_noise_(options.s_noise()),
        afs_(options.afs()),
        denoise_to_zero_(options.denoise_to_zero()) {
    if (s_churn_ < 0) fail("heun: s_churn must be >= 0, got ", s_churn_);
    if (s_noise_ < 0) fail("heun: s_noise must be >= 0, got ", s_noise_);
  }
  std::string name() const override { return "heun"; }
  int order() const override { return 2; }
  bool stochastic() const override { return s_churn_ > 0; }
  int64_t nfe(int steps) const override { return 2 * int64_t(steps) - 1 - afs_; }
  /// Every step to σ_N > 0 is corrected: 2N (EDM's "2N − 1" counts its Euler step into 0).
  int64_t nfe_above_zero(int steps) const override { return 2 * int64_t(steps) - afs_ + denoise_to_zero_; }

  torch::Tensor sample(const Denoiser& denoise, torch::Tensor x, const std::vector<double>& grid, NoiseSource& noise,
                       const StepCallback& callback) const override {
    check_grid(*this, grid);
    const std::vector<double> sigmas = detail::solve_grid(grid, denoise_to_zero_);
    const int n = static_cast<int>(grid.size()) - 1, m = static_cast<int>(sigmas.size()) - 1;
    detail::ModelCalls model(denoise, afs_);
    for (int i = 0; i < m; ++i) {
      const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
      // Increase noise temporarily (churn).
      const double gamma = (s_tmin_ <= sigma && sigma <= s_tmax_) ? std::min(s_churn_ / n, std::sqrt(2.0) - 1) : 0.0;
      const double sigma_hat = sigma * (1 + gamma);
      if (gamma > 0) x = x + std::sqrt(sigma_hat * sigma_hat - sigma * sigma) * s_noise_ * noise.randn_like(x);
      // Euler step.
      torch::Tensor d = to_d(x, sigma_hat, model(x, sigma_hat));
      torch::Tensor x_next = steps::euler(x, sigma_hat, sigma_next, d);
      // Apply 2nd order correction (not at σ_next = 0, where D is the answer).
      if (sigma_next != 0) {
        torch::Tensor d_next = to_d(x_next, sigma_next, model(x_next, sigma_next));
        x_next = steps::heun(x, sigma_hat, sigma_next, d, d_next);
      }
      x = x_next;
      if (callback) callback(i, n, sigma_next);
    }
    if (denoise_to_zero_) {
      x = model(x, sigmas.back());
      if (callback) callback(n - 1, n, 0.0);
    }
    return x;
  }

 private:
  double s_churn_, s_tmin_, s_tmax_, s_noise_;
  bool afs_, denoise_to_zero_;
};

}  // namespace

std::unique_ptr<Sampler> detail::make_heun(const HeunOptions& options) { return std::make_unique<Heun>(options); }

std::unique_ptr<Sampler> make_heun(const KeyValueArgs& args) {
  const HeunOptions defaults;
  return detail::make_heun(HeunOptions()
                               .s_churn(args.get_double("s_churn", defaults.s_churn()))
                               .s_tmin(args.get_double("s_tmin", defaults.s_tmin()))
                               .s_tmax(args.get_double("s_tmax", defaults.s_tmax()))
                               .s_noise(args.get_double("s_noise", defaults.s_noise()))
                               .afs(detail::read_afs(args))
                               .denoise_to_zero(detail::read_denoise_to_zero(args)));
}

}  // namespace scoreflow
