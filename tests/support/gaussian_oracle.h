#pragma once
/// Exact oracles for Gaussian data x0 ~ N(μ, Σ) under x_t = a·x0 + b·ε (docs/design.md §6):
/// S_t = a²Σ + b²I, ε* = b·S⁻¹(x_t − aμ), E[x0|x_t] = μ + aΣS⁻¹(x_t − aμ),
/// Cov[x0|x_t] = Σ − a²ΣS⁻¹Σ, Γ*_t = E‖ε*‖²/d = (b²/d)·tr S⁻¹. Header-only, float64.
#include <torch/types.h>

#include <Eigen/Dense>
#include <cstdint>
#include <vector>

namespace scoreflow::testing {

/// N(μ, diag(v)); per-dimension closed forms.
struct DiagonalGaussian {
  std::vector<double> mu;
  std::vector<double> var;

  int64_t dim() const { return static_cast<int64_t>(mu.size()); }
  /// Var x_t,i = a²v_i + b² (the diagonal of S_t).
  double marginal_var(int64_t i, double a, double b) const { return a * a * var[i] + b * b; }
  /// Γ* = (b²/d)·Σ_i 1/(a²v_i + b²).
  double gamma_star(double a, double b) const {
    double sum = 0.0;
    for (int64_t i = 0; i < dim(); ++i) sum += 1.0 / marginal_var(i, a, b);
    return b * b * sum / static_cast<double>(dim());
  }
  /// Cov[x0|x_t]_ii = v_i − a²v_i²/S_i = v_i·b²/S_i (independent of x_t).
  double posterior_var(int64_t i, double a, double b) const { return var[i] * b * b / marginal_var(i, a, b); }
  double mean_posterior_var(double a, double b) const {
    double sum = 0.0;
    for (int64_t i = 0; i < dim(); ++i) sum += posterior_var(i, a, b);
    return sum / static_cast<double>(dim());
  }
  /// Var[ε_i|x_t] = a²v_i/S_i.
  double eps_posterior_var(int64_t i, double a, double b) const { return a * a * var[i] / marginal_var(i, a, b); }
  torch::Tensor mu_tensor() const { return torch::tensor(mu, torch::dtype(torch::kFloat64)); }
  torch::Tensor var_tensor() const { return torch::tensor(var, torch::dtype(torch::kFloat64)); }
  /// ε*(x_t) = b(x_t − aμ)/S, x_t: [B, d] float64.
  torch::Tensor eps(const torch::Tensor& x_t, double a, double b) const {
    const torch::Tensor s = a * a * var_tensor() + b * b;
    return b * (x_t - a * mu_tensor()) / s;
  }
  /// E[x0|x_t] = μ + a·v(x_t − aμ)/S.
  torch::Tensor x0_mean(const torch::Tensor& x_t, double a, double b) const {
    const torch::Tensor v = var_tensor();
    return mu_tensor() + a * v * (x_t - a * mu_tensor()) / (a * a * v + b * b);
  }
};

/// Γ* = (b²/d)·tr (a²Σ + b²I)⁻¹ for a full covariance.
inline double gamma_star_full(const Eigen::MatrixXd& sigma, double a, double b) {
  const int64_t d = sigma.rows();
  const Eigen::MatrixXd s = a * a * sigma + b * b * Eigen::MatrixXd::Identity(d, d);
  return b * b * s.inverse().trace() / static_cast<double>(d);
}

/// Cov[x0|x_t] = Σ − a²ΣS⁻¹Σ.
inline Eigen::MatrixXd posterior_cov_full(const Eigen::MatrixXd& sigma, double a, double b) {
  const int64_t d = sigma.rows();
  const Eigen::MatrixXd s = a * a * sigma + b * b * Eigen::MatrixXd::Identity(d, d);
  return sigma - a * a * sigma * s.ldlt().solve(sigma);
}

}  // namespace scoreflow::testing
