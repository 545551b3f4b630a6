#include <cmath>

#include "samplers/common.h"
#include "samplers/typed.h"
#include "scoreflow/registry.h"

namespace scoreflow {
namespace {

/// Euler–Maruyama on the reverse-time SDE of x_σ = x0 + σε (Song et al. 2021, eq. 6 with
/// g² = dσ²/dσ = 2σ): x' = x + 2(σ' − σ)·d + sqrt(2σ(σ − σ'))·z; the last step (to σ = 0)
/// returns the denoised mean.
class EulerMaruyama : public Sampler {
 public:
  explicit EulerMaruyama(const EulerMaruyamaOptions& options) : afs_(options.afs()) {}
  std::string name() const override { return "euler_maruyama"; }
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
      torch::Tensor denoised = model(x, sigma);
      if (sigma_next == 0) {
        x = denoised;  // final step: the posterior mean
      } else {
        torch::Tensor d = to_d(x, sigma, denoised);
        x = x + 2 * (sigma_next - sigma) * d + std::sqrt(2 * sigma * (sigma - sigma_next)) * noise.randn_like(x);
      }
      if (callback) callback(i, n, sigma_next);
    }
    return x;
  }

 private:
  bool afs_;
};

}  // namespace

std::unique_ptr<Sampler> detail::make_euler_maruyama(const EulerMaruyamaOptions& options) {
  return std::make_unique<EulerMaruyama>(options);
}

std::unique_ptr<Sampler> make_euler_maruyama(const KeyValueArgs& args) {
  return detail::make_euler_maruyama(EulerMaruyamaOptions().afs(detail::read_afs(args)));
}

}  // namespace scoreflow
