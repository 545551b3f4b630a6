#include <cmath>

#include "samplers/common.h"
#include "samplers/typed.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"

namespace scoreflow {
namespace {

/// DPM-Solver-2 (Lu et al. 2022, Algorithm 1 with general r) in σ-space, where noise prediction is
/// d and the exponential integrator is exact on its linear part: the intermediate point sits at
/// λ + r·h (σ_mid = σ^{1−r}·σ'^r) and x' = x + (σ' − σ)·[(1 − 1/(2r))·d + 1/(2r)·d_mid]. At r = 1/2
/// this is k-diffusion's sample_dpm_2 (x' = x + (σ' − σ)·d_mid) and AMED with c = a = 1. The step
/// into σ = 0 is an Euler step, i.e. x ← D(x, σ): 2 NFE per step, 1 for the last.
class DpmSolver2 : public Sampler {
 public:
  explicit DpmSolver2(const DpmSolver2Options& options)
      : r_(options.r()), afs_(options.afs()), denoise_to_zero_(options.denoise_to_zero()) {
    if (!(r_ > 0 && r_ <= 1)) fail("dpm_solver_2: r must be in (0, 1], got ", r_);
  }
  std::string name() const override { return "dpm_solver_2"; }
  int order() const override { return 2; }
  int64_t nfe(int steps) const override { return 2 * int64_t(steps) - 1 - afs_; }
  /// Every step to σ_N > 0 has its midpoint call: 2N.
  int64_t nfe_above_zero(int steps) const override { return 2 * int64_t(steps) - afs_ + denoise_to_zero_; }

  torch::Tensor sample(const Denoiser& denoise, torch::Tensor x, const std::vector<double>& grid, NoiseSource&,
                       const StepCallback& callback) const override {
    check_grid(*this, grid);
    const std::vector<double> sigmas = detail::solve_grid(grid, denoise_to_zero_);
    const int n = static_cast<int>(grid.size()) - 1, m = static_cast<int>(sigmas.size()) - 1;
    detail::ModelCalls model(denoise, afs_);
    for (int i = 0; i < m; ++i) {
      const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
      torch::Tensor d = to_d(x, sigma, model(x, sigma));
      if (sigma_next == 0) {
        // Euler step into σ = 0: the denoised estimate.
        x = x + (sigma_next - sigma) * d;
      } else {
        // Intermediate point at λ_mid = λ + r·h.
        const double sigma_mid = std::pow(sigma, 1 - r_) * std::pow(sigma_next, r_);
        torch::Tensor x_mid = x + (sigma_mid - sigma) * d;
        torch::Tensor d_mid = to_d(x_mid, sigma_mid, model(x_mid, sigma_mid));
        // Second-order step from the two slopes.
        const double w = 1 / (2 * r_);
        x = x + (sigma_next - sigma) * ((1 - w) * d + w * d_mid);
      }
      if (callback) callback(i, n, sigma_next);
    }
    if (denoise_to_zero_) {
      x = model(x, sigmas.back());
      if (callback) callback(n - 1, n, 0.0);
    }
    return x;
  }

 private:
  double r_;
  bool afs_, denoise_to_zero_;
};

}  // namespace

std::unique_ptr<Sampler> detail::make_dpm_solver_2(const DpmSolver2Options& options) {
  return std::make_unique<DpmSolver2>(options);
}

std::unique_ptr<Sampler> make_dpm_solver_2(const KeyValueArgs& args) {
  return detail::make_dpm_solver_2(DpmSolver2Options()
                                       .r(args.get_double("r", DpmSolver2Options().r()))
                                       .afs(detail::read_afs(args))
                                       .denoise_to_zero(detail::read_denoise_to_zero(args)));
}

}  // namespace scoreflow
