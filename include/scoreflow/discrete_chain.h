#pragma once
/// The discrete VP chain of a vp_discrete model (Bao et al., ICLR 2022, §2) and the λ² family of
/// reverse steps on it with their optimal variances (Analytic-DPM, Thm 1–2; SN-/NPR-DPM, Bao et
/// al., ICML 2022). Host double math; tensor helpers keep the caller's shape. Shared by the
/// Analytic-DPM samplers and the estimators (docs/design.md §5).
///
/// Timestep convention (the paper's and the official code's): the chain has timesteps t = 0..N.
/// t = 0 is data (ᾱ_0 = 1); t = n ≥ 1 is the model's discrete step n − 1 (`model_index`), whose
/// ᾱ is `alphas_cumprod[n − 1]`.
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "scoreflow/model.h"

namespace scoreflow {

/// ᾱ_t, β̄_t = 1 − ᾱ_t and the skip quantities of the chain (docs/design.md §5). All in double;
/// β_{t|s} = −expm1(log ᾱ_t − log ᾱ_s), so short skips keep their relative precision.
class DiscreteChain {
 public:
  /// `alphas_cumprod`: the model's ᾱ for its steps 0..N−1 (= timesteps 1..N), strictly
  /// decreasing in (0, 1).
  explicit DiscreteChain(const std::vector<double>& alphas_cumprod);
  /// From per-step β_1..β_N, cumulated in log space (β̄_t = −expm1(Σ log1p(−β))).
  static DiscreteChain from_betas(const std::vector<double>& betas);

  int64_t num_steps() const { return static_cast<int64_t>(log_alpha_bar_.size()) - 1; }
  double alpha_bar(int64_t t) const;              ///< ᾱ_t, t ∈ [0, N]
  double beta_bar(int64_t t) const;               ///< β̄_t = 1 − ᾱ_t
  double alpha(int64_t t, int64_t s) const;       ///< α_{t|s} = ᾱ_t / ᾱ_s, 0 ≤ s ≤ t ≤ N
  double beta(int64_t t, int64_t s) const;        ///< β_{t|s} = 1 − α_{t|s}
  double beta_tilde(int64_t s, int64_t t) const;  ///< β̃_{s|t} = β_{t|s}·β̄_s/β̄_t, 0 ≤ s < t
  double sigma(int64_t t) const;                  ///< σ-space level sqrt(β̄_t/ᾱ_t) (0 at t = 0)
  /// The network's own step index for timestep t ≥ 1 (t − 1).
  int64_t model_index(int64_t t) const;

 private:
  void check_t(int64_t t, const char* what) const;
  std::vector<double> log_alpha_bar_;  // t = 0..N
  std::vector<double> beta_bar_;       // t = 0..N
};

// ---- Timestep subsequences (all contain 1 and N, strictly increasing, 2 ≤ K ≤ N) ----

/// "even": τ_k = round(1 + k(N−1)/(K−1)), k = 0..K−1, exactly as the official code's
/// `_choice_steps_linear` computes it (the index accumulated in double, rounded half to even as
/// Python's round); gaps differ by at most one.
std::vector<int64_t> even_timesteps(int64_t N, int64_t K);
/// "quadratic": τ_k = round(1 + (N−1)(k/(K−1))²), repeats pushed up by one (dense near data).
/// Unlike DDIM's code (which stops at ≈ 0.8N), it ends at N so the prior term sits at N.
std::vector<int64_t> quadratic_timesteps(int64_t N, int64_t K);
/// Checks a user list (sorted, unique, in [1, N], first 1, last N) and returns it.
std::vector<int64_t> explicit_timesteps(const std::vector<int64_t>& steps, int64_t N);
/// "even" | "quadratic" by name; throws listing the choices ("optimal" needs Γ: see below).
std::vector<int64_t> timesteps_by_name(const std::string& name, int64_t N, int64_t K);

// ---- The λ² family and its optimal variance (Bao et al. 2022, §3: Thm 1, Thm 2) ----

/// One step s < t of the family q_λ(x_s|x_t, x0), λ² = η²·β̃_{s|t} (η = 1 DDPM, η = 0 DDIM).
/// Mean of p(x_s|x_t) = coef_xt·x_t + gamma·x̂0 = c_x·x_t + c_eps·ε̂.
struct StepCoefficients {
  double lambda2;  ///< λ²
  double gamma;    ///< γ = sqrt(ᾱ_s) − sqrt(β̄_s − λ²)·sqrt(ᾱ_t/β̄_t)
  double coef_xt;  ///< sqrt(β̄_s − λ²)/sqrt(β̄_t)
  double c_x;      ///< sqrt(ᾱ_s/ᾱ_t)
  double c_eps;    ///< sqrt(β̄_s − λ²) − sqrt(ᾱ_s·β̄_t/ᾱ_t)
};
StepCoefficients step_coefficients(const DiscreteChain& chain, int64_t s, int64_t t, double eta);

/// Data range [lo, hi] of x0; per-element Cov[x0|x_t] ≤ ((hi − lo)/2)².
struct DataRange {
  double lo = -1.0;
  double hi = 1.0;
  double max_var() const { return 0.25 * (hi - lo) * (hi - lo); }
};

/// E tr Cov[x0|x_t]/d = (β̄_t/ᾱ_t)(1 − Γ_t), Γ in the ε convention (Bao et al. 2022, Lemma 11).
double cov_x0_from_gamma(const DiscreteChain& chain, int64_t t, double gamma_eps);

/// Theorem 2: λ² ≤ σ*² ≤ λ² + γ²·min(β̄_t/ᾱ_t, ((hi − lo)/2)²).
struct VarianceBounds {
  double lower;
  double upper;
};
VarianceBounds variance_bounds(const DiscreteChain& chain, int64_t s, int64_t t, double eta,
                               const DataRange& range = {});

/// σ*²_{s|t} = λ² + γ²·(β̄_t/ᾱ_t)(1 − Γ_t), the covariance term clipped to Theorem 2's bounds
/// when `clip` (otherwise only at 0 below). Γ in the ε convention.
double analytic_variance(const DiscreteChain& chain, int64_t s, int64_t t, double gamma_eps, double eta,
                         const DataRange& range = {}, bool clip = true);

/// Noise-variance cap for the step producing x_{τ_1}: (y·(2/255)·sqrt(π/2))², y = 1 or 2.
double sigma2_clip_threshold(double y);

/// SN-DPM (Bao et al., ICML 2022): per-element variance of p(x_s|x_t) from the second-moment
/// head h ≈ E[ε²|x_t] and ε̂: λ² + γ²·clip((β̄_t/ᾱ_t)(h − ε̂²), 0, ((hi − lo)/2)²). Any shape.
torch::Tensor sn_dpm_variance(const DiscreteChain& chain, int64_t s, int64_t t, const torch::Tensor& h,
                              const torch::Tensor& eps_hat, double eta, const DataRange& range = {});
/// NPR-DPM: from g ≈ E[(ε − ε̂)²|x_t]: λ² + γ²·clip((β̄_t/ᾱ_t)·g, 0, ((hi − lo)/2)²). Any shape.
torch::Tensor npr_dpm_variance(const DiscreteChain& chain, int64_t s, int64_t t, const torch::Tensor& g, double eta,
                               const DataRange& range = {});

}  // namespace scoreflow

namespace scoreflow {

/// The chain of a vp_discrete model; throws naming the schedule otherwise.
DiscreteChain chain_of(const Model& model);
/// The chain timestep (1..N) of a σ on the model's discrete grid; 0 for σ = 0. Throws when σ is
/// not one of the model's discrete noise levels.
int64_t chain_timestep(const Model& model, double sigma);

}  // namespace scoreflow
