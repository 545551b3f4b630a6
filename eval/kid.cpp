/// Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with the cubic polynomial
/// kernel, averaged over random subsets.
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "eval/metric_inputs.h"
#include "scoreflow/error.h"
#include "scoreflow/metrics.h"

namespace scoreflow::eval {
namespace {

// k(a, b) = (a·b / D + 1)³ for all row pairs: [m, n].
torch::Tensor polynomial_kernel(const torch::Tensor& a, const torch::Tensor& b) {
  const double d = static_cast<double>(a.size(1));
  return (a.mm(b.t()) / d + 1.0).pow(3);
}

// Mean of the off-diagonal entries of a square kernel matrix.
double off_diagonal_mean(const torch::Tensor& k) {
  const double m = static_cast<double>(k.size(0));
  return (k.sum() - k.diagonal().sum()).item<double>() / (m * (m - 1.0));
}

// MMD² on checked float64 rows.
double mmd2(const torch::Tensor& x, const torch::Tensor& y) {
  return off_diagonal_mean(polynomial_kernel(x, x)) + off_diagonal_mean(polynomial_kernel(y, y)) -
         2.0 * polynomial_kernel(x, y).mean().item<double>();
}

std::pair<torch::Tensor, torch::Tensor> checked_pair(const torch::Tensor& x, const torch::Tensor& y) {
  auto xd = detail::rows_as_double(x, "x");
  auto yd = detail::rows_as_double(y, "y");
  if (xd.size(1) != yd.size(1)) fail("dimension mismatch: x has dimension ", xd.size(1), ", y has ", yd.size(1));
  detail::check_finite_rows(xd, "x");
  detail::check_finite_rows(yd, "y");
  return {xd, yd};
}

// Uniform integer in [0, n) from a 64-bit engine by rejection (std::uniform_int_distribution is
// implementation-defined, so this keeps draws identical across standard libraries).
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  uint64_t r;
  do r = rng();
  while (r >= limit);
  return r % n;
}

// `k` distinct indices of [0, n) in random order (partial Fisher–Yates).
std::vector<int64_t> sample_without_replacement(std::mt19937_64& rng, int64_t n, int64_t k) {
  std::vector<int64_t> pool(n);
  std::iota(pool.begin(), pool.end(), 0);
  for (int64_t i = 0; i < k; ++i) std::swap(pool[i], pool[i + uniform_below(rng, static_cast<uint64_t>(n - i))]);
  pool.resize(k);
  return pool;
}

torch::Tensor select_rows(const torch::Tensor& rows, const std::vector<int64_t>& idx, const char* what) {
  if (idx.size() < 2) fail("KID subsets need at least 2 ", what, " rows, got ", idx.size());
  for (const int64_t i : idx)
    if (i < 0 || i >= rows.size(0))
      fail("KID subset index ", i, " out of range for ", what, " with ", rows.size(0), " rows");
  const auto index = torch::tensor(idx, torch::kInt64);
  return rows.index_select(0, index);
}

KidResult summarize(const std::vector<double>& mmds) {
  const double n = static_cast<double>(mmds.size());
  KidResult result;
  result.mean = std::accumulate(mmds.begin(), mmds.end(), 0.0) / n;
  double ss = 0.0;
  for (const double v : mmds) ss += (v - result.mean) * (v - result.mean);
  result.std = std::sqrt(ss / n);
  return result;
}

}  // namespace

double mmd2_unbiased_polynomial(const torch::Tensor& x, const torch::Tensor& y) {
  const auto [xd, yd] = checked_pair(x, y);
  if (xd.size(0) < 2 || yd.size(0) < 2)
    fail("unbiased MMD² needs at least 2 rows in each set, got ", xd.size(0), " and ", yd.size(0));
  return mmd2(xd, yd);
}

KidResult kernel_inception_distance(const torch::Tensor& x, const torch::Tensor& y, const KidOptions& options) {
  if (options.subsets < 1) fail("KID subsets must be >= 1, got ", options.subsets);
  if (options.subset_size < 2) fail("KID subset_size must be >= 2, got ", options.subset_size);
  const auto [xd, yd] = checked_pair(x, y);
  if (xd.size(0) < options.subset_size || yd.size(0) < options.subset_size)
    fail("KID with subset_size ", options.subset_size, " needs at least ", options.subset_size,
         " samples in each set, got ", xd.size(0), " and ", yd.size(0));

  std::mt19937_64 rng(options.seed);
  std::vector<double> mmds;
  mmds.reserve(options.subsets);
  for (int64_t s = 0; s < options.subsets; ++s) {
    const auto ix = sample_without_replacement(rng, xd.size(0), options.subset_size);
    const auto iy = sample_without_replacement(rng, yd.size(0), options.subset_size);
    mmds.push_back(mmd2(select_rows(xd, ix, "x"), select_rows(yd, iy, "y")));
  }
  return summarize(mmds);
}

KidResult kernel_inception_distance(const torch::Tensor& x, const torch::Tensor& y,
                                    const std::vector<KidSubset>& subsets) {
  if (subsets.empty()) fail("KID needs at least one subset");
  const auto [xd, yd] = checked_pair(x, y);
  std::vector<double> mmds;
  mmds.reserve(subsets.size());
  for (const auto& [ix, iy] : subsets) mmds.push_back(mmd2(select_rows(xd, ix, "x"), select_rows(yd, iy, "y")));
  return summarize(mmds);
}

}  // namespace scoreflow::eval
