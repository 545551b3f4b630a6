/// Optimal reverse variances: Analytic-DPM (Bao et al., ICLR 2022, Thm 1–2) and the per-element
/// SN-/NPR-DPM covariances (Bao et al., ICML 2022).
#include <algorithm>
#include <cmath>

#include "scoreflow/discrete_chain.h"
#include "scoreflow/error.h"

namespace scoreflow {

namespace {

void check_step(const DiscreteChain& chain, int64_t s, int64_t t) {
  if (!(0 <= s && s < t && t <= chain.num_steps()))
    fail("reverse step needs 0 <= s < t <= N = ", chain.num_steps(), ", got s = ", s, ", t = ", t);
}

void check_eta(double eta) {
  if (!(eta >= 0.0 && eta <= 1.0)) fail("eta must be in [0, 1], got ", eta);
}

void check_range(const DataRange& range) {
  if (!(range.hi > range.lo)) fail("data range needs lo < hi, got [", range.lo, ", ", range.hi, "]");
}

}  // namespace

StepCoefficients step_coefficients(const DiscreteChain& chain, int64_t s, int64_t t, double eta) {
  check_step(chain, s, t);
  check_eta(eta);
  const double abar_s = chain.alpha_bar(s), abar_t = chain.alpha_bar(t);
  const double bbar_s = chain.beta_bar(s), bbar_t = chain.beta_bar(t);
  StepCoefficients c{};
  c.lambda2 = eta * eta * chain.beta_tilde(s, t);
  // β̄_s − λ² = β̄_s(1 − η²β_{t|s}/β̄_t): no cancellation between two nearly equal numbers.
  const double rest = std::max(0.0, bbar_s * (1.0 - eta * eta * chain.beta(t, s) / bbar_t));
  c.gamma = std::sqrt(abar_s) - std::sqrt(rest) * std::sqrt(abar_t / bbar_t);
  c.coef_xt = std::sqrt(rest / bbar_t);
  c.c_x = std::sqrt(abar_s / abar_t);
  c.c_eps = std::sqrt(rest) - std::sqrt(abar_s * bbar_t / abar_t);
  return c;
}

double cov_x0_from_gamma(const DiscreteChain& chain, int64_t t, double gamma_eps) {
  if (t < 1 || t > chain.num_steps()) fail("cov_x0_from_gamma: t = ", t, " is outside [1, ", chain.num_steps(), "]");
  return chain.beta_bar(t) / chain.alpha_bar(t) * (1.0 - gamma_eps);
}

VarianceBounds variance_bounds(const DiscreteChain& chain, int64_t s, int64_t t, double eta, const DataRange& range) {
  check_range(range);
  const StepCoefficients c = step_coefficients(chain, s, t, eta);
  const double cov_max = std::min(chain.beta_bar(t) / chain.alpha_bar(t), range.max_var());
  return {c.lambda2, c.lambda2 + c.gamma * c.gamma * cov_max};
}

double analytic_variance(const DiscreteChain& chain, int64_t s, int64_t t, double gamma_eps, double eta,
                         const DataRange& range, bool clip) {
  check_range(range);
  if (!std::isfinite(gamma_eps)) fail("analytic_variance: Gamma at t = ", t, " is ", gamma_eps);
  const StepCoefficients c = step_coefficients(chain, s, t, eta);
  double cov = std::max(0.0, cov_x0_from_gamma(chain, t, gamma_eps));
  // Theorem 2: E Cov ≤ β̄_t/ᾱ_t (Γ ≥ 0) and ≤ ((b − a)/2)² for data in [a, b].
  if (clip) cov = std::min(cov, std::min(chain.beta_bar(t) / chain.alpha_bar(t), range.max_var()));
  return c.lambda2 + c.gamma * c.gamma * cov;
}

double sigma2_clip_threshold(double y) {
  if (!(y > 0.0)) fail("sigma2 clip: y must be > 0, got ", y);
  const double sigma = y * (2.0 / 255.0) * std::sqrt(M_PI / 2.0);
  return sigma * sigma;
}

namespace {

torch::Tensor variance_from_cov(const StepCoefficients& c, const torch::Tensor& cov, const DataRange& range) {
  return c.lambda2 + c.gamma * c.gamma * cov.clamp(0.0, range.max_var());
}

}  // namespace

torch::Tensor sn_dpm_variance(const DiscreteChain& chain, int64_t s, int64_t t, const torch::Tensor& h,
                              const torch::Tensor& eps_hat, double eta, const DataRange& range) {
  check_range(range);
  if (!h.sizes().equals(eps_hat.sizes()))
    fail("sn_dpm_variance: h ", h.sizes(), " and eps_hat ", eps_hat.sizes(), " differ in shape");
  const StepCoefficients c = step_coefficients(chain, s, t, eta);
  // Cov[x0|x_t] = (β̄_t/ᾱ_t)·Var[ε|x_t] = (β̄_t/ᾱ_t)(E[ε²|x_t] − ε̂²), element-wise.
  const double scale = chain.beta_bar(t) / chain.alpha_bar(t);
  return variance_from_cov(c, scale * (h - eps_hat * eps_hat), range);
}

torch::Tensor npr_dpm_variance(const DiscreteChain& chain, int64_t s, int64_t t, const torch::Tensor& g, double eta,
                               const DataRange& range) {
  check_range(range);
  const StepCoefficients c = step_coefficients(chain, s, t, eta);
  const double scale = chain.beta_bar(t) / chain.alpha_bar(t);
  return variance_from_cov(c, scale * g, range);
}

}  // namespace scoreflow
