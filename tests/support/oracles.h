#pragma once
// Exact solutions used as test oracles (docs/design.md §6).
#include <torch/types.h>

#include <cmath>
#include <vector>

namespace scoreflow::oracle {

/// PF-ODE solution for isotropic Gaussian data N(mu, s²I) in σ-space:
/// x(σ) = μ + (x(σ0) − μ)·sqrt((s² + σ²)/(s² + σ0²)).
inline torch::Tensor gaussian_ode_solution(const torch::Tensor& x0, double mu, double s, double sigma0, double sigma) {
  return mu + (x0 - mu) * std::sqrt((s * s + sigma * sigma) / (s * s + sigma0 * sigma0));
}

/// Least-squares slope of log(err) against log(steps).
inline double fitted_slope(const std::vector<double>& steps, const std::vector<double>& errors) {
  double mx = 0, my = 0;
  const double n = static_cast<double>(steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    mx += std::log(steps[i]) / n;
    my += std::log(errors[i]) / n;
  }
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    double dx = std::log(steps[i]) - mx;
    sxy += dx * (std::log(errors[i]) - my);
    sxx += dx * dx;
  }
  return sxy / sxx;
}

}  // namespace scoreflow::oracle
