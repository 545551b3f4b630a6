#include <cmath>

#include "samplers/common.h"
#include "samplers/lincomb.h"
#include "samplers/typed.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"

namespace scoreflow {
namespace {

/// SDE-DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++" §5; k-diffusion sample_dpmpp_2m_sde) in
/// λ = −log σ with η scaling the injected noise: with h = λ' − λ and H = (1 + η)·h,
///   x' = (σ'/σ)·e^{−ηh}·x + (1 − e^{−H})·D_i + correction + σ'·sqrt(1 − e^{−2ηh})·z,
/// correction = (1 − e^{−H})/2 · (D_i − D_{i−1})/r ("midpoint") or (H − 1 + e^{−H})/H · (D_i − D_{i−1})/r
/// ("heun"), r = h_{i−1}/h. η = 1 is the posterior (DDPM) step; η = 0 with midpoint is dpmpp_2m.
/// The step into σ = 0 returns D. One NFE per step: N for N steps.
class DpmppSde : public Sampler {
 public:
  explicit DpmppSde(const Dpmpp2mSdeOptions& options)
      : eta_(options.eta()),
        solver_type_(options.solver_type() == SdeSolverType::Heun ? "heun" : "midpoint"),
        afs_(options.afs()) {
    if (!(eta_ >= 0 && std::isfinite(eta_))) fail("dpmpp_2m_sde: eta must be >= 0, got ", eta_);
  }
  std::string name() const override { return "dpmpp_2m_sde"; }
  int order() const override { return eta_ == 0 ? 2 : 1; }
  bool stochastic() const override { return eta_ > 0; }
  int64_t nfe(int steps) const override { return steps - afs_; }

  torch::Tensor sample(const Denoiser& denoise, torch::Tensor x, const std::vector<double>& sigmas, NoiseSource& noise,
                       const StepCallback& callback) const override {
    check_grid(*this, sigmas);
    const int n = static_cast<int>(sigmas.size()) - 1;
    detail::ModelCalls model(denoise, afs_);
    torch::Tensor x0_prev;
    double h_prev = 0;
    for (int i = 0; i < n; ++i) {
      const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
      torch::Tensor x0 = model(x, sigma);
      if (sigma_next == 0) {
        x = x0;  // λ' = ∞: the data prediction
      } else {
        const double h = std::log(sigma / sigma_next), eta_h = eta_ * h, big_h = h + eta_h;
        // First-order exponential-integrator step with the noise split off, plus the second-order
        // correction (c/r)·(D − D_prev) from the previous data prediction and the noise: one
        // combination with host coefficients (detail::lincomb).
        std::vector<detail::Term> terms{{(sigma_next / sigma) * std::exp(-eta_h), x}, {-std::expm1(-big_h), x0}};
        if (x0_prev.defined()) {
          const double r = h_prev / h;
          const double c =
              solver_type_ == "midpoint" ? -0.5 * std::expm1(-big_h) : (big_h + std::expm1(-big_h)) / big_h;
          terms[1].c += c / r;
          terms.push_back({-c / r, x0_prev});
        }
        if (eta_ > 0) terms.push_back({sigma_next * std::sqrt(-std::expm1(-2 * eta_h)), noise.randn_like(x)});
        x = detail::lincomb(terms);
        h_prev = h;
      }
      x0_prev = x0;
      if (callback) callback(i, n, sigma_next);
    }
    return x;
  }

 private:
  double eta_;
  std::string solver_type_;
  bool afs_;
};

}  // namespace

std::unique_ptr<Sampler> detail::make_dpmpp_2m_sde(const Dpmpp2mSdeOptions& options) {
  return std::make_unique<DpmppSde>(options);
}

std::unique_ptr<Sampler> make_dpmpp_2m_sde(const KeyValueArgs& args) {
  const double eta = args.get_double("eta", Dpmpp2mSdeOptions().eta());
  const std::string solver_type = args.get_string("solver_type", "midpoint");
  const bool afs = detail::read_afs(args);
  if (solver_type != "midpoint" && solver_type != "heun")
    fail("dpmpp_2m_sde: unknown solver_type '", solver_type, "'; valid: midpoint, heun");
  return detail::make_dpmpp_2m_sde(
      Dpmpp2mSdeOptions()
          .eta(eta)
          .solver_type(solver_type == "heun" ? SdeSolverType::Heun : SdeSolverType::Midpoint)
          .afs(afs));
}

}  // namespace scoreflow
