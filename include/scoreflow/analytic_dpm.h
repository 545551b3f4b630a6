#pragma once
/// Analytic-DPM (Bao, Li, Zhu, Zhang, ICLR 2022) and Extended Analytic-DPM (SN-/NPR-DPM; Bao et
/// al., ICML 2022): the discrete VP chain, optimal reverse variances, Γ bookkeeping, the optimal
/// trajectory, and the NLL terms. Host double math; tensor helpers keep the caller's shape.
///
/// Timestep convention (the paper's and the official code's): the chain has timesteps t = 0..N.
/// t = 0 is data (ᾱ_0 = 1); t = n ≥ 1 is the model's discrete step n − 1 (`model_index`), whose
/// ᾱ is `alphas_cumprod[n − 1]`. Trajectories are 1 = τ_1 < … < τ_K = N; the decoder p(x_0|x_1)
/// closes the chain, the prior N(0, I) opens it at N.
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace scoreflow::analytic {

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
  double sigma(int64_t t) const;  ///< σ-space level sqrt(β̄_t/ᾱ_t) (0 at t = 0)
  /// The network's own step index for timestep t ≥ 1 (t − 1).
  int64_t model_index(int64_t t) const;

 private:
  void check_t(int64_t t, const char* what) const;
  std::vector<double> log_alpha_bar_;  // t = 0..N
  std::vector<double> beta_bar_;       // t = 0..N
};

// ---- Timestep subsequences (all contain 1 and N, strictly increasing, 2 ≤ K ≤ N) ----

/// "even": τ_k = round(1 + k(N−1)/(K−1)), k = 0..K−1, rounding half to even (as Python's round in
/// the official code's `_choice_steps_linear`); gaps differ by at most one.
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
double analytic_variance(const DiscreteChain& chain, int64_t s, int64_t t, double gamma_eps,
                         double eta, const DataRange& range = {}, bool clip = true);

/// Noise-variance cap for the step producing x_{τ_1}: (y·(2/255)·sqrt(π/2))², y = 1 or 2.
double sigma2_clip_threshold(double y);

/// SN-DPM (Bao et al., ICML 2022): per-element variance of p(x_s|x_t) from the second-moment
/// head h ≈ E[ε²|x_t] and ε̂: λ² + γ²·clip((β̄_t/ᾱ_t)(h − ε̂²), 0, ((hi − lo)/2)²). Any shape.
torch::Tensor sn_dpm_variance(const DiscreteChain& chain, int64_t s, int64_t t,
                              const torch::Tensor& h, const torch::Tensor& eps_hat, double eta,
                              const DataRange& range = {});
/// NPR-DPM: from g ≈ E[(ε − ε̂)²|x_t]: λ² + γ²·clip((β̄_t/ᾱ_t)·g, 0, ((hi − lo)/2)²). Any shape.
torch::Tensor npr_dpm_variance(const DiscreteChain& chain, int64_t s, int64_t t,
                               const torch::Tensor& g, double eta, const DataRange& range = {});

// ---- Γ bookkeeping ----

/// Where a Γ file came from. A loaded file must match the expected model and schedule (an empty
/// expected field is not checked); the dataset is recorded only (Γ from the training set is meant
/// to be used on a test set).
struct GammaMeta {
  std::string model;
  std::string schedule;
  std::string dataset;
  std::map<std::string, std::string> settings;  ///< num_images, batch, seed, ...
};

/// One batch's per-image values in the form GammaAccumulator merges: count, Σv and Σ(v − Σv/count)².
/// Shard files keep these per batch, so that replaying them in batch order reproduces an unsharded
/// estimate bit for bit.
struct GammaBatchStats {
  int64_t count = 0;
  double sum = 0.0;
  double m2 = 0.0;
  /// From per-sample values [B] (any device, any floating dtype); throws on NaN/Inf.
  static GammaBatchStats of(const torch::Tensor& values);
};

/// Running mean and standard error of per-image ‖ε̂‖²/d at one timestep (Chan et al. merge).
class GammaAccumulator {
 public:
  void add(double value);
  /// Per-sample values, e.g. `per_sample_sq_norm(eps_hat)`; any device, any floating dtype.
  void add(const torch::Tensor& values);
  /// One batch's statistics (add(values) is add(GammaBatchStats::of(values))); count 0 is a no-op.
  void add(const GammaBatchStats& batch);
  int64_t count() const { return count_; }
  double mean() const { return mean_; }
  double std_err() const;  ///< sqrt(sample variance / count); 0 when count < 2

 private:
  int64_t count_ = 0;
  double mean_ = 0.0;
  double m2_ = 0.0;
};

/// ‖ε̂‖²/d per sample: [B, ...] → [B] float64.
torch::Tensor per_sample_sq_norm(const torch::Tensor& eps_hat);

/// One timestep's Γ. `gamma` is `gamma_raw` clipped to [0, 1].
struct GammaEntry {
  int64_t t = 0;
  double gamma = 0.0;
  double gamma_raw = 0.0;
  double std_err = 0.0;
  int64_t count = 0;
};

/// Γ_t = E‖ε̂(x_t, t)‖²/d per timestep in the ε convention (the paper's score-norm Γ is Γ_eps/β̄_t),
/// possibly for a subset of timesteps; values outside [0, 1] are clipped and counted.
class GammaTable {
 public:
  static constexpr const char* kConvention = "eps";

  GammaTable(GammaMeta meta, int64_t num_steps);

  /// Records timestep t ∈ [1, N]; clips the mean to [0, 1] (counted in `num_clipped`).
  void set(int64_t t, double mean, double std_err, int64_t count);
  void set(int64_t t, const GammaAccumulator& acc);

  bool has(int64_t t) const;
  const GammaEntry& entry(int64_t t) const;  ///< throws unless `has(t)`
  std::vector<GammaEntry> entries() const;   ///< ascending t
  /// Γ_t: the estimate when present, else linear interpolation in t between the nearest
  /// estimated timesteps (constant beyond the first/last). Throws when nothing is estimated.
  double eps(int64_t t) const;
  /// The paper's convention E‖∇log q_t‖²/d = Γ_eps/β̄_t.
  double score_norm(int64_t t, const DiscreteChain& chain) const;
  /// Γ for t = 0..N (index 0 holds 0: x_0 carries no noise), interpolated as in `eps`.
  std::vector<double> dense() const;

  int64_t num_clipped() const;  ///< timesteps whose raw mean left [0, 1]
  std::vector<int64_t> clipped_timesteps() const;
  int64_t num_steps() const { return num_steps_; }
  const GammaMeta& meta() const { return meta_; }

  std::string to_json() const;
  /// Parses a Γ file and refuses it (naming the field, the file's value and ours) when its model,
  /// schedule or step count differ from `expect` / `chain`. Accepts convention "eps" or "score"
  /// (converted with the chain's β̄). `source` names the file in messages.
  static GammaTable from_json(const std::string& text, const DiscreteChain& chain,
                              const GammaMeta& expect, const std::string& source = "<json>");
  void save(const std::string& path) const;  ///< atomic (temporary + rename)
  static GammaTable load(const std::string& path, const DiscreteChain& chain,
                         const GammaMeta& expect);

 private:
  GammaMeta meta_;
  int64_t num_steps_;
  std::vector<GammaEntry> entries_;  // index t; count == 0 means absent
};

// ---- Optimal trajectory (Bao et al. 2022, §4) ----

/// Step costs for 0 ≤ s < t ≤ N, stored t-major (row t holds all s) so the DP's inner loop over
/// s reads contiguous memory. Unset or forbidden steps are +inf.
class StepCostMatrix {
 public:
  explicit StepCostMatrix(int64_t N);
  int64_t num_steps() const { return n_; }
  double operator()(int64_t s, int64_t t) const { return data_[t * (n_ + 1) + s]; }
  void set(int64_t s, int64_t t, double cost);
  const double* row(int64_t t) const { return data_.data() + t * (n_ + 1); }

 private:
  int64_t n_;
  std::vector<double> data_;
};

/// J(s, t) = log(1 − β_{t|s}·Γ_t/β̄_t) for 1 ≤ s < t ≤ N. A step whose argument is ≤ 0 (possible
/// only with Γ_t > 1, i.e. an unclipped, badly estimated Γ) is forbidden: +inf.
StepCostMatrix trajectory_cost(const DiscreteChain& chain, const std::vector<double>& gamma_dense);

/// Least-cost path 1 = τ_1 < … < τ_K = N under `cost` by dynamic programming, O(N²K) time,
/// O(NK) memory. Throws when every path uses a forbidden step.
std::vector<int64_t> least_cost_path(const StepCostMatrix& cost, int64_t K);
/// Σ_k cost(τ_k, τ_{k+1}).
double path_cost(const StepCostMatrix& cost, const std::vector<int64_t>& path);

/// The optimal K-point trajectory for a Γ table (all N timesteps used, interpolated if sparse).
std::vector<int64_t> optimal_trajectory(const DiscreteChain& chain, const GammaTable& gamma,
                                        int64_t K);

// ---- NLL terms (nats; `bits_per_dim` converts) ----

/// The reverse variance used for the NLL of the DDPM chain (η = 1).
enum class ReverseVariance { analytic, ddpm_beta, ddpm_tilde };
/// "analytic" | "ddpm-beta" | "ddpm-tilde"; throws listing the choices.
ReverseVariance parse_reverse_variance(const std::string& name);
std::string to_string(ReverseVariance v);

/// σ²_{s|t} of the DDPM chain: analytic (σ*², η = 1, clipped), β_{t|s} or β̃_{s|t}.
double ddpm_step_variance(const DiscreteChain& chain, int64_t s, int64_t t, ReverseVariance v,
                          double gamma_eps, const DataRange& range = {});
/// Variances of the K − 1 steps τ_{k+1} → τ_k along `traj`, in trajectory order (k = 1..K−1).
std::vector<double> trajectory_variances(const DiscreteChain& chain,
                                         const std::vector<int64_t>& traj, ReverseVariance v,
                                         const GammaTable& gamma, const DataRange& range = {});
/// Decoder p(x_0|x_1) variance: β̃_{1|2} (improved-DDPM's clipped log variance; official code).
double decoder_variance(const DiscreteChain& chain);

/// KL(N(m1, v1) ‖ N(m2, v2)) in nats, scalar.
double gaussian_kl(double m1, double v1, double m2, double v2);
/// Element-wise KL of diagonal Gaussians, broadcasting; computed in float64.
torch::Tensor gaussian_kl(const torch::Tensor& m1, const torch::Tensor& v1, const torch::Tensor& m2,
                          const torch::Tensor& v2);
/// Element-wise KL(q(x_N|x0) ‖ N(0, I)) for data x0 (any shape).
torch::Tensor prior_kl(const DiscreteChain& chain, const torch::Tensor& x0);
/// Element-wise KL(q(x_s|x_t, x0) ‖ p(x_s|x_t)) where p has the DDPM posterior mean at x̂0 and
/// variance sigma2: the means differ by γ(x0 − x̂0), so x_t is not needed. 1 ≤ s < t.
torch::Tensor step_kl(const DiscreteChain& chain, int64_t s, int64_t t, const torch::Tensor& x0,
                      const torch::Tensor& x0_hat, double sigma2);
/// Per-dimension E[step_kl] given mse = E‖x0 − x̂0‖²/d (closed form; exact-oracle checks).
double expected_step_kl(const DiscreteChain& chain, int64_t s, int64_t t, double sigma2,
                        double mse_x0);
/// Element-wise log p(x0) under N(mean, var) discretised to 256 bins on [−1, 1] (bin half-width
/// 1/255, edge bins extended to ±∞), computed stably in float64 via log Φ (log_ndtr).
torch::Tensor discretized_gaussian_log_likelihood(const torch::Tensor& x0,
                                                  const torch::Tensor& mean,
                                                  const torch::Tensor& var);
/// [B, ...] element-wise nats → [B] bits/dim (sum / (d·ln 2)).
torch::Tensor bits_per_dim(const torch::Tensor& nats);

}  // namespace scoreflow::analytic
