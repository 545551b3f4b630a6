/// The optimal trajectory of Analytic-DPM (Bao et al., ICLR 2022, §4): the K-point path
/// 1 = τ_1 < … < τ_K = N minimising Σ J(τ_k, τ_{k+1}), by dynamic programming.
#include <cmath>
#include <limits>

#include "scoreflow/analytic_dpm.h"
#include "scoreflow/error.h"

namespace scoreflow {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
/// min without min2's NaN rules (costs are never NaN): compiles to one minsd/minpd.
inline double min2(double a, double b) { return b < a ? b : a; }
}  // namespace

StepCostMatrix::StepCostMatrix(int64_t N) : n_(N) {
  if (N < 1) fail("StepCostMatrix: N must be >= 1, got ", N);
  data_.assign(static_cast<size_t>((N + 1) * (N + 1)), kInf);
}

void StepCostMatrix::set(int64_t s, int64_t t, double cost) {
  if (!(0 <= s && s < t && t <= n_))
    fail("StepCostMatrix: step needs 0 <= s < t <= ", n_, ", got s = ", s, ", t = ", t);
  if (std::isnan(cost)) fail("StepCostMatrix: cost of step ", s, " -> ", t, " is NaN");
  data_[t * (n_ + 1) + s] = cost;
}

StepCostMatrix trajectory_cost(const DiscreteChain& chain, const std::vector<double>& gamma_dense) {
  const int64_t N = chain.num_steps();
  if (static_cast<int64_t>(gamma_dense.size()) != N + 1)
    fail("trajectory_cost: Gamma must have N + 1 = ", N + 1, " entries (t = 0..N), got ", gamma_dense.size());
  StepCostMatrix cost(N);
  for (int64_t t = 2; t <= N; ++t) {
    const double g = gamma_dense[t] / chain.beta_bar(t);  // the paper's score-norm Γ_t
    for (int64_t s = 1; s < t; ++s) {
      const double arg = 1.0 - chain.beta(t, s) * g;
      // arg ≤ 0 needs β_{t|s}Γ_t > β̄_t, impossible for Γ_t ≤ 1 (β_{t|s} < β̄_t): an estimation
      // artefact. The step is forbidden rather than given a finite made-up cost.
      cost.set(s, t, arg > 0.0 ? std::log(arg) : kInf);
    }
  }
  return cost;
}

std::vector<int64_t> least_cost_path(const StepCostMatrix& cost, int64_t K) {
  const int64_t N = cost.num_steps();
  if (K < 1 || K > N) fail("optimal trajectory: K = ", K, " must be in [1, N = ", N, "]");
  if (K == 1) {
    if (N != 1) fail("optimal trajectory: K = 1 cannot join 1 and N = ", N);
    return {1};
  }
  const int64_t W = N + 1;
  // best[k][n]: least cost of a (k+1)-point path 1 = τ_1 < … < τ_{k+1} = n; only
  // k + 1 ≤ n ≤ N − (K − 1 − k) can lie on a full path.
  std::vector<double> best(static_cast<size_t>(K * W), kInf);
  best[1] = 0.0;  // k = 0: the one-point path {1}
  for (int64_t k = 1; k < K; ++k) {
    const double* prev = best.data() + (k - 1) * W;
    double* cur = best.data() + k * W;
    const int64_t t_hi = N - (K - 1 - k);
    for (int64_t t = k + 1; t <= t_hi; ++t) {
      const double* row = cost.row(t);  // row[s] = cost(s, t), contiguous in s
      // Four independent minima keep the loop pipelined (and vectorisable).
      double m0 = kInf, m1 = kInf, m2 = kInf, m3 = kInf;
      int64_t s = k;
      for (; s + 3 < t; s += 4) {
        m0 = min2(m0, prev[s] + row[s]);
        m1 = min2(m1, prev[s + 1] + row[s + 1]);
        m2 = min2(m2, prev[s + 2] + row[s + 2]);
        m3 = min2(m3, prev[s + 3] + row[s + 3]);
      }
      for (; s < t; ++s) m0 = min2(m0, prev[s] + row[s]);
      cur[t] = min2(min2(m0, m1), min2(m2, m3));
    }
  }
  if (!(best[(K - 1) * W + N] < kInf))
    fail("optimal trajectory: every ", K, "-point path from 1 to ", N,
         " uses a forbidden step (Gamma > 1?); clip Gamma to [0, 1]");
  // Backtrack: the predecessor reproduces the stored sum bit for bit (same operands, same op).
  std::vector<int64_t> path(static_cast<size_t>(K));
  path[K - 1] = N;
  for (int64_t k = K - 1; k >= 1; --k) {
    const int64_t t = path[k];
    const double* prev = best.data() + (k - 1) * W;
    const double* row = cost.row(t);
    const double target = best[k * W + t];
    int64_t arg = -1;
    for (int64_t s = k; s < t; ++s)
      if (prev[s] + row[s] == target) {
        arg = s;
        break;
      }
    if (arg < 0) fail("optimal trajectory: internal error backtracking at k = ", k, ", t = ", t);
    path[k - 1] = arg;
  }
  return path;
}

double path_cost(const StepCostMatrix& cost, const std::vector<int64_t>& path) {
  explicit_timesteps(path, cost.num_steps());
  double total = 0.0;
  for (size_t k = 1; k < path.size(); ++k) total += cost(path[k - 1], path[k]);
  return total;
}

std::vector<int64_t> optimal_trajectory(const DiscreteChain& chain, const GammaTable& gamma, int64_t K) {
  if (gamma.num_steps() != chain.num_steps())
    fail("optimal trajectory: Gamma table has N = ", gamma.num_steps(), " but the chain has N = ", chain.num_steps());
  return least_cost_path(trajectory_cost(chain, gamma.dense()), K);
}

}  // namespace scoreflow
