/// Exact 1-D W2 between empirical measures and the Monte Carlo sliced W2 built on it
/// (Rabin et al. 2011; Bonneel et al. 2015).
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <vector>

#include "eval/metric_inputs.h"
#include "scoreflow/error.h"
#include "scoreflow/metrics.h"

namespace scoreflow::eval {
namespace {

// ∫₀¹ (F⁻¹(u) − G⁻¹(u))² du for sorted samples a (n values, quantile steps at i/n) and b (m values,
// steps at j/m): walk the merged breakpoints; both quantile functions are constant in between.
// Breakpoints are compared as integers (i·m vs j·n) so equal fractions meet exactly.
double w2_squared_sorted(const double* a, int64_t n, const double* b, int64_t m) {
  if (n == m) {
    double total = 0.0;
    for (int64_t i = 0; i < n; ++i) total += (a[i] - b[i]) * (a[i] - b[i]);
    return total / static_cast<double>(n);
  }
  // Positions on the common grid u = k / (n·m): a's i-th step ends at (i+1)·m, b's j-th at (j+1)·n.
  double total = 0.0;
  int64_t i = 0, j = 0, last = 0;
  while (i < n && j < m) {
    const int64_t end_a = (i + 1) * m, end_b = (j + 1) * n;
    const int64_t end = std::min(end_a, end_b);
    total += static_cast<double>(end - last) * (a[i] - b[j]) * (a[i] - b[j]);
    last = end;
    if (end_a == end) ++i;
    if (end_b == end) ++j;
  }
  return total / (static_cast<double>(n) * static_cast<double>(m));
}

std::vector<double> sorted_values(const torch::Tensor& v) {
  std::vector<double> out(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

double w2_squared_1d(const torch::Tensor& x, const torch::Tensor& y) {
  const auto xd = detail::as_double(x, 1, "x");
  const auto yd = detail::as_double(y, 1, "y");
  if (xd.numel() < 1 || yd.numel() < 1)
    fail("1-D W2 needs at least 1 sample in each set, got ", xd.numel(), " and ", yd.numel());
  detail::check_finite_rows(xd.unsqueeze(1), "x");
  detail::check_finite_rows(yd.unsqueeze(1), "y");
  const auto a = sorted_values(xd), b = sorted_values(yd);
  return w2_squared_sorted(a.data(), xd.numel(), b.data(), yd.numel());
}

double sliced_w2_squared(const torch::Tensor& x, const torch::Tensor& y, const SlicedW2Options& options) {
  if (options.projections < 1) fail("sliced W2 projections must be >= 1, got ", options.projections);
  const auto xd = detail::rows_as_double(x, "x");
  const auto yd = detail::rows_as_double(y, "y");
  if (xd.size(1) != yd.size(1)) fail("dimension mismatch: x has dimension ", xd.size(1), ", y has ", yd.size(1));
  if (xd.size(0) < 1 || yd.size(0) < 1)
    fail("sliced W2 needs at least 1 sample in each set, got ", xd.size(0), " and ", yd.size(0));
  detail::check_finite_rows(xd, "x");
  detail::check_finite_rows(yd, "y");

  // Uniform directions on S^{D−1}: normalised standard normal vectors [P, D].
  auto gen = at::detail::createCPUGenerator(options.seed);
  auto u = at::randn({options.projections, xd.size(1)}, gen, torch::kFloat64);
  u /= u.norm(2, /*dim=*/1, /*keepdim=*/true);

  // Projections sorted per direction: [P, N] and [P, M].
  const auto px = std::get<0>(u.mm(xd.t()).sort(/*dim=*/1)).contiguous();
  const auto py = std::get<0>(u.mm(yd.t()).sort(/*dim=*/1)).contiguous();
  const int64_t n = px.size(1), m = py.size(1);
  double total = 0.0;
  for (int64_t p = 0; p < options.projections; ++p)
    total += w2_squared_sorted(px.data_ptr<double>() + p * n, n, py.data_ptr<double>() + p * m, m);
  return total / static_cast<double>(options.projections);
}

}  // namespace scoreflow::eval
