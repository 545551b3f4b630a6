#include <cmath>
#include <algorithm>
#include <deque>

#include "samplers/common.h"
#include "samplers/lincomb.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"

namespace scoreflow {
namespace {

/// Adams–Bashforth weights for x' = x + (σ' − σ)·Σ_j w_j·d_{i−j} on the nodes σ_i, σ_{i−1}, …
/// (newest first): the mean over [σ, σ'] of each Lagrange basis polynomial, by 3-point
/// Gauss–Legendre quadrature (exact up to degree 5, so for orders ≤ 4).
std::vector<double> variable_ab_weights(const std::deque<double>& nodes, double sigma_next) {
  static const double kX[3] = {-std::sqrt(0.6), 0.0, std::sqrt(0.6)}, kW[3] = {5.0 / 18, 8.0 / 18, 5.0 / 18};
  const double a = nodes[0], b = sigma_next;
  std::vector<double> w(nodes.size(), 0.0);
  for (int q = 0; q < 3; ++q) {
    const double tau = 0.5 * (a + b) + 0.5 * (b - a) * kX[q];
    for (size_t j = 0; j < nodes.size(); ++j) {
      double basis = 1;
      for (size_t k = 0; k < nodes.size(); ++k)
        if (k != j) basis *= (tau - nodes[k]) / (nodes[j] - nodes[k]);
      w[j] += kW[q] * basis;
    }
  }
  return w;
}

/// iPNDM (Zhang & Chen 2023, DEIS §4, "improved PNDM"): Adams–Bashforth on d in σ with the fixed
/// coefficients (1), (3, −1)/2, (23, −16, 5)/12, (55, −59, 37, −9)/24 and lower orders while the
/// history fills (warm-up). iPNDM-v uses the variable-step Adams–Bashforth weights of the actual grid
/// instead (the same on a uniform grid). The step into σ = 0 extrapolates d like any other step
/// unless denoise_to_zero. One NFE per step: N for N steps.
class Ipndm : public Sampler {
 public:
  Ipndm(const KeyValueArgs& args, bool variable)
      : variable_(variable),
        max_order_(args.get_int("max_order", 4)),
        afs_(detail::read_afs(args)),
        denoise_to_zero_(detail::read_denoise_to_zero(args)) {
    if (max_order_ < 1 || max_order_ > 4) fail(name(), ": max_order must be 1..4, got ", max_order_);
  }
  std::string name() const override { return variable_ ? "ipndm_v" : "ipndm"; }
  /// Fixed coefficients assume equal steps: on the smoothly non-uniform grids used in practice
  /// (karras, logsnr) they are off by O(h), a local O(h³) error, so iPNDM is second order there
  /// (max_order on an equally spaced σ grid); iPNDM-v keeps max_order on any grid.
  int order() const override { return variable_ ? max_order_ : std::min(max_order_, 2); }
  int64_t nfe(int steps) const override { return steps - afs_; }

  torch::Tensor sample(const Denoiser& denoise, torch::Tensor x, const std::vector<double>& grid, NoiseSource&,
                       const StepCallback& callback) const override {
    static const std::vector<std::vector<double>> kFixed = {
        {1.0}, {3.0 / 2, -1.0 / 2}, {23.0 / 12, -16.0 / 12, 5.0 / 12}, {55.0 / 24, -59.0 / 24, 37.0 / 24, -9.0 / 24}};
    check_grid(*this, grid);
    const std::vector<double> sigmas = detail::solve_grid(grid, denoise_to_zero_);
    const int n = static_cast<int>(grid.size()) - 1, m = static_cast<int>(sigmas.size()) - 1;
    detail::ModelCalls model(denoise, afs_);
    std::deque<torch::Tensor> ds;  // d at σ_i, σ_{i−1}, … (newest first)
    std::deque<double> nodes;      // the σ of each
    for (int i = 0; i < m; ++i) {
      const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
      ds.push_front(to_d(x, sigma, model(x, sigma)));
      nodes.push_front(sigma);
      if (static_cast<int>(ds.size()) > max_order_) ds.pop_back(), nodes.pop_back();
      // Adams–Bashforth step with as many past slopes as there are (warm-up).
      const std::vector<double> w = variable_ ? variable_ab_weights(nodes, sigma_next) : kFixed[ds.size() - 1];
      std::vector<detail::Term> terms{{1.0, x}};
      for (size_t j = 0; j < ds.size(); ++j) terms.push_back({(sigma_next - sigma) * w[j], ds[j]});
      x = detail::lincomb(terms);
      if (callback) callback(i, n, sigma_next);
    }
    if (denoise_to_zero_) {
      x = model(x, sigmas.back());
      if (callback) callback(n - 1, n, 0.0);
    }
    return x;
  }

 private:
  bool variable_;
  int max_order_;
  bool afs_, denoise_to_zero_;
};

}  // namespace

std::unique_ptr<Sampler> make_ipndm(const KeyValueArgs& args) { return std::make_unique<Ipndm>(args, false); }
std::unique_ptr<Sampler> make_ipndm_v(const KeyValueArgs& args) { return std::make_unique<Ipndm>(args, true); }

}  // namespace scoreflow
