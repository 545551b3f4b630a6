#include "samplers/steps.h"

#include <cmath>

#include "samplers/lincomb.h"
#include "scoreflow/error.h"

namespace scoreflow::steps {

const std::vector<double>& adams_bashforth_weights(int order) {
  static const std::vector<std::vector<double>> kFixed = {
      {1.0}, {3.0 / 2, -1.0 / 2}, {23.0 / 12, -16.0 / 12, 5.0 / 12}, {55.0 / 24, -59.0 / 24, 37.0 / 24, -9.0 / 24}};
  if (order < 1 || order > 4) fail("Adams-Bashforth order must be 1..4, got ", order);
  return kFixed[order - 1];
}

torch::Tensor adams_bashforth(const torch::Tensor& x, double h, const std::vector<double>& w,
                              const std::deque<torch::Tensor>& ds) {
  std::vector<detail::Term> terms{{1.0, x}};
  for (size_t j = 0; j < ds.size(); ++j) terms.push_back({h * w[j], ds[j]});
  return detail::lincomb(terms);
}

torch::Tensor adams_bashforth(const std::vector<double>& w, const std::deque<torch::Tensor>& ds) {
  std::vector<detail::Term> terms;
  for (size_t j = 0; j < ds.size(); ++j) terms.push_back({w[j], ds[j]});
  return detail::lincomb(terms);
}

void push_slope(std::deque<torch::Tensor>& ds, torch::Tensor d, size_t keep) {
  ds.push_front(std::move(d));
  while (ds.size() > keep) ds.pop_back();
}

DpmppStep dpmpp_2m(double sigma, double sigma_next, double r) {
  const double h = std::log(sigma / sigma_next);
  const double phi_1 = std::expm1(-h);  // e^{−h} − 1, accurate for small h
  DpmppStep step{sigma_next / sigma, -phi_1, 0.0};
  if (r != 0) {
    step.c0 -= phi_1 / (2 * r);
    step.c1 = phi_1 / (2 * r);
  }
  return step;
}

double dpmpp_ratio(double sigma_prev, double sigma, double sigma_next) {
  return (-std::log(sigma) - -std::log(sigma_prev)) / std::log(sigma / sigma_next);
}

}  // namespace scoreflow::steps
