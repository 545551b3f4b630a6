#pragma once
/// Analytic-DPM (Bao, Li, Zhu, Zhang, ICLR 2022) and Extended Analytic-DPM (SN-/NPR-DPM; Bao et
/// al., ICML 2022): the optimal trajectory and the NLL terms, over the discrete chain and Γ table
/// of models/ (discrete_chain.h, gamma_table.h, included here). Host double math; tensor helpers
/// keep the caller's shape.
///
/// Trajectories are 1 = τ_1 < … < τ_K = N; the decoder p(x_0|x_1) closes the chain, the prior
/// N(0, I) opens it at N.
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "scoreflow/discrete_chain.h"
#include "scoreflow/gamma_table.h"

namespace scoreflow {

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
std::vector<int64_t> optimal_trajectory(const DiscreteChain& chain, const GammaTable& gamma, int64_t K);

// ---- NLL terms (nats; `bits_per_dim` converts) ----

/// The reverse variance used for the NLL of the DDPM chain (η = 1).
enum class ReverseVariance { analytic, ddpm_beta, ddpm_tilde };
/// "analytic" | "ddpm-beta" | "ddpm-tilde"; throws listing the choices.
ReverseVariance parse_reverse_variance(const std::string& name);
std::string to_string(ReverseVariance v);

/// σ²_{s|t} of the DDPM chain: analytic (σ*², η = 1, clipped), β_{t|s} or β̃_{s|t}.
double ddpm_step_variance(const DiscreteChain& chain, int64_t s, int64_t t, ReverseVariance v, double gamma_eps,
                          const DataRange& range = {});
/// Variances of the K − 1 steps τ_{k+1} → τ_k along `traj`, in trajectory order (k = 1..K−1).
std::vector<double> trajectory_variances(const DiscreteChain& chain, const std::vector<int64_t>& traj,
                                         ReverseVariance v, const GammaTable& gamma, const DataRange& range = {});
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
double expected_step_kl(const DiscreteChain& chain, int64_t s, int64_t t, double sigma2, double mse_x0);
/// Element-wise log p(x0) under N(mean, var) discretised to 256 bins on [−1, 1] (bin half-width
/// 1/255, edge bins extended to ±∞), computed stably in float64 via log Φ (log_ndtr).
torch::Tensor discretized_gaussian_log_likelihood(const torch::Tensor& x0, const torch::Tensor& mean,
                                                  const torch::Tensor& var);
/// [B, ...] element-wise nats → [B] bits/dim (sum / (d·ln 2)).
torch::Tensor bits_per_dim(const torch::Tensor& nats);

}  // namespace scoreflow
