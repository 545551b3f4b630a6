#include "samplers/common.h"
#include "samplers/steps.h"
#include "samplers/typed.h"
#include "scoreflow/registry.h"

namespace scoreflow {
namespace {

/// Euler's method on the PF-ODE (Karras et al. 2022, Algorithm 2 without the correction).
class Euler : public Sampler {
 public:
  explicit Euler(const EulerOptions& options) : afs_(options.afs()), denoise_to_zero_(options.denoise_to_zero()) {}
  std::string name() const override { return "euler"; }
  int order() const override { return 1; }
  int64_t nfe(int steps) const override { return steps - afs_; }
  int64_t nfe_above_zero(int steps) const override { return steps - afs_ + denoise_to_zero_; }

  torch::Tensor sample(const Denoiser& denoise, torch::Tensor x, const std::vector<double>& grid, NoiseSource&,
                       const StepCallback& callback) const override {
    check_grid(*this, grid);
    const std::vector<double> sigmas = detail::solve_grid(grid, denoise_to_zero_);
    const int n = static_cast<int>(grid.size()) - 1, m = static_cast<int>(sigmas.size()) - 1;
    detail::ModelCalls model(denoise, afs_);
    for (int i = 0; i < m; ++i) {
      const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
      torch::Tensor d = to_d(x, sigma, model(x, sigma));
      x = steps::euler(x, sigma, sigma_next, d);
      if (callback) callback(i, n, sigma_next);
    }
    if (denoise_to_zero_) {
      x = model(x, sigmas.back());
      if (callback) callback(n - 1, n, 0.0);
    }
    return x;
  }

 private:
  bool afs_, denoise_to_zero_;
};

}  // namespace

std::unique_ptr<Sampler> detail::make_euler(const EulerOptions& options) { return std::make_unique<Euler>(options); }

std::unique_ptr<Sampler> make_euler(const KeyValueArgs& args) {
  return detail::make_euler(
      EulerOptions().afs(detail::read_afs(args)).denoise_to_zero(detail::read_denoise_to_zero(args)));
}

}  // namespace scoreflow
