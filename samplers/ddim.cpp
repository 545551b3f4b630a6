#include <algorithm>
#include <cmath>

#include "samplers/common.h"
#include "samplers/typed.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"

namespace scoreflow {
namespace {

/// DDIM (Song et al. 2021, eq. 12) in σ-space: η = 0 is Euler; η > 0 splits σ_next into σ_down
/// (deterministic part) and σ_up (fresh noise), σ_up² = η² σ'²(σ² − σ'²)/σ².
class Ddim : public Sampler {
 public:
  explicit Ddim(const DdimOptions& options) : eta_(options.eta()), afs_(options.afs()) {
    if (!(eta_ >= 0 && eta_ <= 1)) fail("ddim: eta must be in [0, 1], got ", eta_);
  }
  std::string name() const override { return "ddim"; }
  int order() const override { return 1; }
  bool stochastic() const override { return eta_ > 0; }
  int64_t nfe(int steps) const override { return steps - afs_; }

  torch::Tensor sample(const Denoiser& denoise, torch::Tensor x, const std::vector<double>& sigmas, NoiseSource& noise,
                       const StepCallback& callback) const override {
    check_grid(*this, sigmas);
    const int n = static_cast<int>(sigmas.size()) - 1;
    detail::ModelCalls model(denoise, afs_);
    for (int i = 0; i < n; ++i) {
      const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
      const double sigma_up = std::min(
          sigma_next, eta_ * std::sqrt(sigma_next * sigma_next * (sigma * sigma - sigma_next * sigma_next)) / sigma);
      const double sigma_down = std::sqrt(sigma_next * sigma_next - sigma_up * sigma_up);
      torch::Tensor d = to_d(x, sigma, model(x, sigma));
      // Deterministic move to σ_down, then fresh noise up to σ_next.
      x = x + (sigma_down - sigma) * d;
      if (sigma_up > 0) x = x + sigma_up * noise.randn_like(x);
      if (callback) callback(i, n, sigma_next);
    }
    return x;
  }

 private:
  double eta_;
  bool afs_;
};

}  // namespace

std::unique_ptr<Sampler> detail::make_ddim(const DdimOptions& options) { return std::make_unique<Ddim>(options); }

std::unique_ptr<Sampler> make_ddim(const KeyValueArgs& args) {
  return detail::make_ddim(DdimOptions().eta(args.get_double("eta", DdimOptions().eta())).afs(detail::read_afs(args)));
}

}  // namespace scoreflow
