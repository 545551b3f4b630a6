#include <cmath>
#include <deque>
#include <utility>

#include "samplers/common.h"
#include "samplers/typed.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"
#include "scoreflow/sigmas.h"

namespace scoreflow {
namespace {

/// n-point Gauss–Legendre nodes and weights on [−1, 1]: Newton on P_n from the Chebyshev guesses.
std::pair<std::vector<double>, std::vector<double>> gauss_legendre(int n) {
  std::vector<double> x(n), w(n);
  for (int i = 0; i < n; ++i) {
    double z = std::cos(std::acos(-1.0) * (i + 0.75) / (n + 0.5)), dp = 0;
    for (int it = 0; it < 100; ++it) {
      double p0 = 1, p1 = z;  // P_0, P_1; the recurrence ends with p1 = P_n, p0 = P_{n−1}
      for (int k = 2; k <= n; ++k) {
        const double p2 = ((2 * k - 1) * z * p1 - (k - 1) * p0) / k;
        p0 = p1, p1 = p2;
      }
      dp = n * (z * p1 - p0) / (z * z - 1);
      const double dz = p1 / dp;
      z -= dz;
      if (std::abs(dz) < 1e-16) break;
    }
    x[i] = z;
    w[i] = 2 / ((1 - z * z) * dp * dp);
  }
  return {x, w};
}

/// The variable tAB fits ε in: the VP-linear time of the model's σ range (VpTime: a vp_linear
/// model's own t — Song et al.'s VPSDE, the one the DEIS paper integrates in — and for EDM's
/// (0.002, 80) the map the AMED authors use to run DEIS on EDM models), or ρ = σ itself (rhoab).
struct TimeVariable {
  bool rho = false;
  VpTime vp;
  double operator()(double sigma) const { return rho ? sigma : vp.t(sigma); }
};

/// DEIS tAB (Zhang & Chen, ICLR 2023, "Fast Sampling of Diffusion Models with Exponential
/// Integrator"). In σ-space x = x_t/α the PF-ODE is dx/dσ = ε with ε = (x − D)/σ = d: the
/// exponential integrator's linear part is exact and x(σ') = x(σ) + ∫_σ^σ' ε dσ. tAB extrapolates ε
/// by the Lagrange polynomial in t through the last q points (q = min(order, steps taken + 1):
/// warm-up) and integrates it over the step: x' = x + Σ_j C_j·d_{i−j}, C_j = ∫_σ^σ' ℓ_j(t(ς)) dς —
/// the paper's ∫ ℓ_j(τ)·dσ/dτ dτ over t after the change of variable, by 16-point Gauss–Legendre in
/// σ (t(σ) is analytic on the interval: accurate to rounding). Σ_j ℓ_j = 1, so C_0 is set to
/// (σ' − σ) − Σ_{j≥1} C_j: order 1 is Euler to the last bit. The step into σ = 0 is Euler,
/// x ← D(x, σ) (the AMED authors' DEIS; d ∝ σ is not polynomial in t near 0). One NFE per step.
class Deis : public Sampler {
 public:
  explicit Deis(const DeisOptions& options)
      : order_(options.order()),
        variant_(options.variant() == DeisVariant::Rhoab ? "rhoab" : "tab"),
        afs_(options.afs()),
        denoise_to_zero_(options.denoise_to_zero()) {
    if (order_ < 1 || order_ > 3) fail("deis: order must be 1..3, got ", order_);
  }
  std::string name() const override { return "deis"; }
  int order() const override { return order_; }
  int64_t nfe(int steps) const override { return steps - afs_; }
  int64_t nfe_above_zero(int steps) const override { return steps - afs_ + denoise_to_zero_; }

  torch::Tensor sample(const Denoiser& denoise, torch::Tensor x, const std::vector<double>& grid, NoiseSource&,
                       const StepCallback& callback) const override {
    check_grid(*this, grid);
    const std::vector<double> sigmas = detail::solve_grid(grid, denoise_to_zero_);
    const int n = static_cast<int>(grid.size()) - 1, m = static_cast<int>(sigmas.size()) - 1;
    TimeVariable time;
    if (variant_ == "rhoab")
      time.rho = true;
    else
      try {
        time.vp = VpTime::fit(denoise.schedule().sigma_min(), denoise.schedule().sigma_max());
      } catch (const Error& e) {
        fail("deis: ", e.what(), " of the model; use variant=rhoab");
      }
    detail::ModelCalls model(denoise, afs_);
    std::deque<torch::Tensor> ds;  // ε = d at σ_i, σ_{i−1}, … (newest first)
    std::deque<double> ts;         // t of each
    for (int i = 0; i < m; ++i) {
      const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
      ds.push_front(to_d(x, sigma, model(x, sigma)));
      ts.push_front(time(sigma));
      if (static_cast<int>(ds.size()) > order_) ds.pop_back(), ts.pop_back();
      if (sigma_next == 0) {
        // Euler step into σ = 0: the denoised estimate.
        x = x + (sigma_next - sigma) * ds[0];
      } else {
        // tAB step: ε extrapolated in t, integrated over [σ, σ'].
        const std::vector<double> c = tab_coefficients(ts, sigma, sigma_next, time);
        torch::Tensor increment = c[0] * ds[0];
        for (size_t j = 1; j < ds.size(); ++j) increment = increment + c[j] * ds[j];
        x = x + increment;
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
  /// C_j = ∫_σ^σ' ℓ_j(t(ς)) dς, ℓ_j the Lagrange basis on the nodes ts (newest first).
  static std::vector<double> tab_coefficients(const std::deque<double>& ts, double sigma, double sigma_next,
                                              const TimeVariable& time) {
    static const auto kRule = gauss_legendre(16);
    const auto& [nodes, weights] = kRule;
    std::vector<double> c(ts.size(), 0.0);
    const double half = 0.5 * (sigma_next - sigma), mid = 0.5 * (sigma_next + sigma);
    for (size_t q = 0; q < nodes.size(); ++q) {
      const double t = time(mid + half * nodes[q]);
      for (size_t j = 1; j < ts.size(); ++j) {
        double basis = 1;
        for (size_t k = 0; k < ts.size(); ++k)
          if (k != j) basis *= (t - ts[k]) / (ts[j] - ts[k]);
        c[j] += half * weights[q] * basis;
      }
    }
    c[0] = sigma_next - sigma;
    for (size_t j = 1; j < c.size(); ++j) c[0] -= c[j];
    return c;
  }

  int order_;
  std::string variant_;
  bool afs_, denoise_to_zero_;
};

}  // namespace

std::unique_ptr<Sampler> detail::make_deis(const DeisOptions& options) { return std::make_unique<Deis>(options); }

std::unique_ptr<Sampler> make_deis(const KeyValueArgs& args) {
  DeisOptions options;
  options.order(args.get_int("order", options.order()));
  const std::string variant = args.get_string("variant", "tab");
  options.afs(detail::read_afs(args)).denoise_to_zero(detail::read_denoise_to_zero(args));
  if (variant != "tab" && variant != "rhoab") fail("deis: variant '", variant, "' is unknown; valid: tab, rhoab");
  return detail::make_deis(options.variant(variant == "rhoab" ? DeisVariant::Rhoab : DeisVariant::Tab));
}

}  // namespace scoreflow
