#pragma once
/// Wasserstein bounds for a score network (docs/design.md §6): sample-based Lipschitz estimates of the
/// σ-space score s_θ(x, σ) = (D(x, σ) − x)/σ², Kwon, Fan & Lee (NeurIPS 2022) Theorem 1 evaluated
/// with measured score-matching errors, and the probability-flow coupling bound (model ODE vs exact
/// ODE from the same noise).
#include <torch/types.h>

#include <string>
#include <vector>

#include "scoreflow/model.h"
#include "scoreflow/score_matching.h"

namespace scoreflow::eval {

/// Per point of a batch: the one-sided Lipschitz constant λ_max(½(J + Jᵀ)) and the spectral norm
/// ‖J‖₂ of the score Jacobian J = ∇_x s_θ(x, σ) = (∇_x D − I)/σ² (σ-space).
struct JacobianExtremes {
  torch::Tensor one_sided;  ///< [B] float64
  torch::Tensor spectral;   ///< [B] float64
};

/// Power iteration with Jacobian-vector products through LibTorch autograd: Jᵀu is a VJP, Jv the
/// VJP of that VJP with respect to u (the "double-backward" JVP). λ_max of the symmetric part is
/// found by a first pass for the eigenvalue of largest magnitude ρ and, where that one is negative,
/// a second pass on the shifted operator M + ρI. x: [B, ...shape] in the dtype the model takes.
/// `conds`: a conditional model's inputs ([B or 1, ...shape] each, Model::denoise_conditioned).
/// Throws Error when the model's output does not depend differentiably on x.
JacobianExtremes score_jacobian_extremes(const Model& model, const torch::Tensor& x, double sigma, int iterations = 30,
                                         uint64_t seed = 0, const std::vector<torch::Tensor>& conds = {});

struct WBoundOptions {
  std::vector<double> sigmas;     ///< noise levels (evaluation_sigmas), any order
  int64_t lipschitz_points = 32;  ///< data-noised points per σ for the Lipschitz estimate
  int iterations = 30;            ///< power iterations per pass
  int64_t num_images = 256;       ///< draws per σ for SM / DSM
  int64_t batch = 64;
  bool use_dsm = false;  ///< use DSM instead of the exact SM (a looser bound)
  int ode_steps = 40;    ///< Karras-grid steps for the coupling ODEs
  std::string ode_sampler = "heun";
  int64_t ode_samples = 256;  ///< seeds 0..ode_samples−1
  uint64_t seed = 0;
  torch::ScalarType dtype = torch::kFloat32;  ///< dtype fed to the model for Jacobians
  /// A conditional model's inputs per dataset item (item_conditions over the target's size()): the
  /// score matching and Lipschitz points use their items' rows; the coupling ODE's seed i uses
  /// row i mod P (as sampling does). Empty for models without conditions.
  ItemConditions conditions;
};

struct WBoundRow {
  double sigma = 0;
  double lipschitz_max = 0, lipschitz_mean = 0;  ///< one-sided, over the sampled points
  double spectral_max = 0, spectral_mean = 0;    ///< two-sided ‖J‖₂, over the sampled points
  double score_error = 0;                        ///< SM_ε(σ) (or DSM_ε with use_dsm)
  double log_i = 0;                              ///< log I(σ) = ∫_0^σ 2r L_s(r) dr
};

struct WBoundReport {
  std::vector<WBoundRow> rows;  ///< ascending σ
  double kwon_integral = 0;     ///< ∫ 2 I(σ) sqrt(SM_ε(σ)) dσ
  double prior_w2 = 0;          ///< W2(p_T, N(0, σ_max² I)) or an upper bound on it
  std::string prior_w2_kind;    ///< "exact (Gaussian)" or "coupling bound sqrt(E|x0|^2)"
  double kwon_bound = 0;        ///< kwon_integral + I(σ_max)·prior_w2
  double su_coupling = 0;       ///< sqrt(E‖x_0 − y_0‖²), model ODE vs exact ODE, same noise
  double su_coupling_se = 0;    ///< standard error of E‖x_0 − y_0‖² propagated to its square root
  int64_t su_nfe = 0;
  bool has_true_w2 = false;
  double true_w2 = 0;  ///< exact W2 when both the model and the target are Gaussian
  bool has_gelbrich = false;
  double gelbrich_w2 = 0;  ///< Bures W2 between Gaussian model and the data's Gaussian fit
};

/// Runs everything for `model` against `target`. Kwon's bound (VE form in σ-space: dx = √(dσ²/dσ) dw,
/// so L_f = 0 and g² = 2σ per unit σ) is
///   W2(p_0, q_0) ≤ ∫_0^{σ_max} 2σ I(σ) √(E‖∇log p_σ − s_θ‖²) dσ + I(σ_max)·W2(p_T, q_T),
///   I(σ) = exp ∫_0^σ 2r L_s(r) dr,
/// and since the score error in score units is SM_ε/σ², the integrand is 2 I(σ) √SM_ε(σ). Both
/// integrals use the trapezoid rule in log σ over the given levels, with L_s and SM_ε held at their
/// smallest-σ values on [0, σ_min]. L_s is a sample-based estimate (a max over finitely many
/// points), so the bound is an estimate, not a certificate. The network work per level and the
/// coupling go through `memo` (score_matching's names, "lipschitz-level-KKK", "coupling").
WBoundReport wasserstein_bound(std::shared_ptr<const Model> model, const ExactTarget& target,
                               const WBoundOptions& options, const io::Memo& memo = {});

}  // namespace scoreflow::eval
