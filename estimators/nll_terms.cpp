/// The NLL (negative ELBO) of a K-step DDPM chain in pieces: prior KL, per-step Gaussian KLs and
/// the discretised-Gaussian decoder (Ho et al., 2020, Eq. 5 and §3.3; Bao et al., ICLR 2022).
#include <cmath>

#include "scoreflow/analytic_dpm.h"
#include "scoreflow/error.h"

namespace scoreflow {

ReverseVariance parse_reverse_variance(const std::string& name) {
  if (name == "analytic") return ReverseVariance::analytic;
  if (name == "ddpm-beta") return ReverseVariance::ddpm_beta;
  if (name == "ddpm-tilde") return ReverseVariance::ddpm_tilde;
  fail("unknown variance '", name, "' (valid: analytic, ddpm-beta, ddpm-tilde)");
}

std::string to_string(ReverseVariance v) {
  switch (v) {
    case ReverseVariance::analytic:
      return "analytic";
    case ReverseVariance::ddpm_beta:
      return "ddpm-beta";
    case ReverseVariance::ddpm_tilde:
      return "ddpm-tilde";
  }
  fail("unknown ReverseVariance value ", static_cast<int>(v));
}

double ddpm_step_variance(const DiscreteChain& chain, int64_t s, int64_t t, ReverseVariance v, double gamma_eps,
                          const DataRange& range) {
  if (!(1 <= s && s < t && t <= chain.num_steps()))
    fail("DDPM step needs 1 <= s < t <= N = ", chain.num_steps(), ", got s = ", s, ", t = ", t);
  switch (v) {
    case ReverseVariance::analytic:
      return analytic_variance(chain, s, t, gamma_eps, 1.0, range);
    case ReverseVariance::ddpm_beta:
      return chain.beta(t, s);
    case ReverseVariance::ddpm_tilde:
      return chain.beta_tilde(s, t);
  }
  fail("unknown ReverseVariance value ", static_cast<int>(v));
}

std::vector<double> trajectory_variances(const DiscreteChain& chain, const std::vector<int64_t>& traj,
                                         ReverseVariance v, const GammaTable& gamma, const DataRange& range) {
  explicit_timesteps(traj, chain.num_steps());
  std::vector<double> out;
  out.reserve(traj.size());
  for (size_t k = 1; k < traj.size(); ++k) {
    const double g = v == ReverseVariance::analytic ? gamma.eps(traj[k]) : 0.0;
    out.push_back(ddpm_step_variance(chain, traj[k - 1], traj[k], v, g, range));
  }
  return out;
}

double decoder_variance(const DiscreteChain& chain) {
  if (chain.num_steps() < 2) fail("decoder variance beta_tilde(1|2) needs N >= 2");
  return chain.beta_tilde(1, 2);
}

double gaussian_kl(double m1, double v1, double m2, double v2) {
  if (!(v1 > 0.0 && v2 > 0.0)) fail("gaussian_kl: variances must be > 0, got ", v1, ", ", v2);
  // r − 1 − log r with u = r − 1: u − log1p(u) keeps precision when v1 ≈ v2.
  const double u = v1 / v2 - 1.0;
  return 0.5 * ((u - std::log1p(u)) + (m1 - m2) * (m1 - m2) / v2);
}

torch::Tensor gaussian_kl(const torch::Tensor& m1, const torch::Tensor& v1, const torch::Tensor& m2,
                          const torch::Tensor& v2) {
  const auto f64 = [](const torch::Tensor& x) { return x.to(torch::kFloat64); };
  const torch::Tensor u = f64(v1) / f64(v2) - 1.0;
  const torch::Tensor dm = f64(m1) - f64(m2);
  return 0.5 * ((u - torch::log1p(u)) + dm * dm / f64(v2));
}

torch::Tensor prior_kl(const DiscreteChain& chain, const torch::Tensor& x0) {
  const int64_t N = chain.num_steps();
  const double abar = chain.alpha_bar(N);
  const torch::Tensor x = x0.to(torch::kFloat64);
  // KL(N(sqrt(ᾱ_N) x0, β̄_N) ‖ N(0, 1)); β̄_N − 1 − log β̄_N = −ᾱ_N − log1p(−ᾱ_N).
  return 0.5 * ((-abar - std::log1p(-abar)) + abar * x * x);
}

namespace {

/// Coefficient of x0 in the DDPM posterior mean: sqrt(ᾱ_s)·β_{t|s}/β̄_t.
double posterior_x0_coef(const DiscreteChain& chain, int64_t s, int64_t t) {
  return std::sqrt(chain.alpha_bar(s)) * chain.beta(t, s) / chain.beta_bar(t);
}

void check_kl_step(const DiscreteChain& chain, int64_t s, int64_t t, double sigma2) {
  if (!(1 <= s && s < t && t <= chain.num_steps()))
    fail("step KL needs 1 <= s < t <= N = ", chain.num_steps(), ", got s = ", s, ", t = ", t);
  if (!(sigma2 > 0.0)) fail("step KL: sigma2 must be > 0, got ", sigma2);
}

}  // namespace

torch::Tensor step_kl(const DiscreteChain& chain, int64_t s, int64_t t, const torch::Tensor& x0,
                      const torch::Tensor& x0_hat, double sigma2) {
  check_kl_step(chain, s, t, sigma2);
  const double u = chain.beta_tilde(s, t) / sigma2 - 1.0;
  const double coef = posterior_x0_coef(chain, s, t);
  const torch::Tensor diff = x0.to(torch::kFloat64) - x0_hat.to(torch::kFloat64);
  return 0.5 * ((u - std::log1p(u)) + (coef * coef / sigma2) * diff * diff);
}

double expected_step_kl(const DiscreteChain& chain, int64_t s, int64_t t, double sigma2, double mse_x0) {
  check_kl_step(chain, s, t, sigma2);
  const double u = chain.beta_tilde(s, t) / sigma2 - 1.0;
  const double coef = posterior_x0_coef(chain, s, t);
  return 0.5 * ((u - std::log1p(u)) + coef * coef * mse_x0 / sigma2);
}

namespace {

/// log(1 − e^d) for d ≤ 0 (Mächler 2012): expm1 near 0, log1p further out.
torch::Tensor log1mexp(const torch::Tensor& d) {
  return torch::where(d > -M_LN2, torch::log(-torch::expm1(d)), torch::log1p(-torch::exp(d)));
}

}  // namespace

torch::Tensor discretized_gaussian_log_likelihood(const torch::Tensor& x0, const torch::Tensor& mean,
                                                  const torch::Tensor& var) {
  const torch::Tensor x = x0.to(torch::kFloat64);
  const torch::Tensor centred = x - mean.to(torch::kFloat64);
  const torch::Tensor inv_std = torch::rsqrt(var.to(torch::kFloat64));
  const double half_bin = 1.0 / 255.0;
  const torch::Tensor upper = (centred + half_bin) * inv_std;       // u
  const torch::Tensor lower = (centred - half_bin) * inv_std;       // l
  const torch::Tensor log_cdf_upper = at::special_log_ndtr(upper);  // log Φ(u)
  const torch::Tensor log_sf_lower = at::special_log_ndtr(-lower);  // log Φ(−l) = log(1 − Φ(l))
  // Interior bins, log(Φ(u) − Φ(l)) without cancellation:
  //  both below 0: log Φ(u) + log1mexp(log Φ(l) − log Φ(u));
  //  both above 0: the mirror image with Φ(−l), Φ(−u);
  //  straddling 0: erf(u/√2) > 0 > erf(l/√2), so their difference adds magnitudes.
  const torch::Tensor below = log_cdf_upper + log1mexp(at::special_log_ndtr(lower) - log_cdf_upper);
  const torch::Tensor above = log_sf_lower + log1mexp(at::special_log_ndtr(-upper) - log_sf_lower);
  const torch::Tensor straddle = torch::log(0.5 * (torch::erf(upper * M_SQRT1_2) - torch::erf(lower * M_SQRT1_2)));
  torch::Tensor interior = torch::where(upper <= 0, below, torch::where(lower >= 0, above, straddle));
  // Edge bins reach to ±∞ (x0 = ∓1 up to rounding of the 256 levels).
  return torch::where(x < -0.999, log_cdf_upper, torch::where(x > 0.999, log_sf_lower, interior));
}

torch::Tensor bits_per_dim(const torch::Tensor& nats) {
  if (nats.dim() < 2) fail("bits_per_dim: expected [B, ...] with per-element terms, got ", nats.sizes());
  const double d = static_cast<double>(nats[0].numel());
  return nats.to(torch::kFloat64).flatten(1).sum(1) / (d * M_LN2);
}

}  // namespace scoreflow
