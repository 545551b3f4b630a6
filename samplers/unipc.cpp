#include <cmath>
#include <deque>

#include "samplers/common.h"
#include "samplers/lincomb.h"
#include "samplers/typed.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"

namespace scoreflow {
namespace {

/// Solves the small dense system A·y = b (Gaussian elimination with partial pivoting).
std::vector<double> solve(std::vector<std::vector<double>> a, std::vector<double> b) {
  const size_t n = b.size();
  for (size_t c = 0; c < n; ++c) {
    size_t p = c;
    for (size_t r = c + 1; r < n; ++r)
      if (std::abs(a[r][c]) > std::abs(a[p][c])) p = r;
    std::swap(a[c], a[p]);
    std::swap(b[c], b[p]);
    for (size_t r = c + 1; r < n; ++r) {
      const double f = a[r][c] / a[c][c];
      for (size_t k = c; k < n; ++k) a[r][k] -= f * a[c][k];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> y(n);
  for (size_t c = n; c-- > 0;) {
    double s = b[c];
    for (size_t k = c + 1; k < n; ++k) s -= a[c][k] * y[k];
    y[c] = s / a[c][c];
  }
  return y;
}

/// UniPC (Zhao et al. 2023, "UniPC", Algorithms 1–2 for data prediction) in λ = −log σ. Step i of
/// order p with h = λ_{i+1} − λ_i, r_k = (λ_{i−k} − λ_i)/h, D_k = (D_{i−k} − D_i)/r_k:
///   predictor UniP-p:  x̃ = (σ'/σ)x + (1 − e^{−h})·D_i − B(h)·Σ_{k<p} a_k·D_k,
///   corrector UniC-p:  x  = (σ'/σ)x + (1 − e^{−h})·D_i − B(h)·(Σ_{k<p} c_k·D_k + c_p·(D(x̃, σ') − D_i)),
/// with B(h) = −h (bh1) or e^{−h} − 1 (bh2) and the weights solving Σ_k w_k r_k^{j−1} = j!·φ_{j+1}(−h)·(−h)/B(h)
/// (a_1 = 1/2 for p = 2 and c_1 = 1/2 for p = 1, as the paper's implementation). D(x̃, σ') is the next
/// step's model output, so the corrector costs no NFE; it is off on the last step. Warm-up as
/// DPM-Solver++; lower_order_final on every grid, as the official code (wl-zhao/UniPC
/// `multistep_uni_pc_bh_update` and its `sample`, and diff-sampler; `below10`: only for fewer than 10
/// steps, as DPM-Solver); thresholding=dynamic as DPM-Solver++. The step into σ = 0 is x ← D_i. N NFE for N steps;
/// UniPC-p is of order p + 1.
class UniPc : public Sampler {
 public:
  explicit UniPc(const UnipcOptions& options)
      : variant_(options.variant() == UnipcVariant::Bh1 ? "bh1" : "bh2"),
        max_order_(options.order()),
        lower_order_final_(detail::lower_order_rule(options.lower_order_final(), detail::LowerOrderFinal::Always)),
        thresholding_(options.thresholding() == Thresholding::Dynamic),
        afs_(options.afs()),
        denoise_to_zero_(options.denoise_to_zero()) {
    if (max_order_ < 1 || max_order_ > 3) fail("unipc: order must be 1..3, got ", max_order_);
  }
  std::string name() const override { return "unipc"; }
  int order() const override { return max_order_ + 1; }
  int64_t nfe(int steps) const override { return steps - afs_; }
  int64_t nfe_above_zero(int steps) const override { return steps - afs_ + denoise_to_zero_; }

  torch::Tensor sample(const Denoiser& denoise, torch::Tensor x, const std::vector<double>& grid, NoiseSource&,
                       const StepCallback& callback) const override {
    check_grid(*this, grid);
    const std::vector<double> sigmas = detail::solve_grid(grid, denoise_to_zero_);
    const int n = static_cast<int>(grid.size()) - 1, m = static_cast<int>(sigmas.size()) - 1;
    const int total = m + denoise_to_zero_;  // the final denoise counts as a step (see dpmpp_multistep.cpp)
    detail::ModelCalls model(denoise, afs_);
    auto x0_of = [&](const torch::Tensor& d) { return thresholding_ ? detail::dynamic_threshold(d) : d; };
    std::deque<torch::Tensor> x0s;  // D at λ_i, λ_{i−1}, … (newest first)
    std::deque<double> lambdas;
    for (int i = 0; i < m; ++i) {
      const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
      if (i == 0) x0s.push_front(x0_of(model(x, sigma))), lambdas.push_front(-std::log(sigma));
      if (sigma_next == 0) {
        x = x0s[0];  // λ' = ∞: the data prediction
        if (callback) callback(i, n, sigma_next);
        break;
      }
      int p = std::min<int>(max_order_, x0s.size());
      p = detail::final_order(lower_order_final_, p, i, total);
      const double h = std::log(sigma / sigma_next), hh = -h;
      const double b_h = variant_ == "bh1" ? hh : std::expm1(hh);
      // r_k and the right-hand sides j!·hh·φ_{j+1}(hh)/B(h), j = 1..p. The divided differences
      // D_k = (D_{i−k} − D_i)/r_k enter only through the coefficients below: every update is one
      // combination of x and the stored D's with host coefficients (detail::lincomb).
      std::vector<double> r;
      for (int k = 1; k < p; ++k) r.push_back((lambdas[k] - lambdas[0]) / h);
      std::vector<double> rhs;
      double g = std::expm1(hh) / hh - 1, factorial = 1;  // g = hh·φ_2(hh)
      for (int j = 1; j <= p; ++j) {
        rhs.push_back(g * factorial / b_h);
        factorial *= j + 1;
        g = g / hh - 1 / factorial;
      }
      // x_lin = (σ'/σ)·x − expm1(hh)·D_i, then − B(h)·Σ_k w_k·D_k, as terms.
      auto combination = [&](const std::vector<double>& w) {
        std::vector<detail::Term> terms{{sigma_next / sigma, x}, {-std::expm1(hh), x0s[0]}};
        for (size_t k = 0; k < w.size(); ++k) {
          terms[1].c += b_h * w[k] / r[k];
          terms.push_back({-b_h * w[k] / r[k], x0s[k + 1]});
        }
        return terms;
      };
      // Predictor (UniP-p).
      std::vector<double> a;
      if (p >= 2) a = p > 2 ? solve(vandermonde(r, p - 1), {rhs.begin(), rhs.end() - 1}) : std::vector<double>{0.5};
      torch::Tensor x_pred = detail::lincomb(combination(a));
      const bool last = i == m - 1;
      if (last) {
        x = x_pred;
      } else {
        // Corrector (UniC-p) with the model output the next step needs anyway:
        // x = x_lin − B(h)·(Σ_k c_k·D_k + c_p·(D_next − D_i)).
        torch::Tensor x0_next = x0_of(model(x_pred, sigma_next));
        std::vector<double> rc = r;
        rc.push_back(1.0);
        std::vector<double> c{0.5};
        if (p > 1) c = solve(vandermonde(rc, p), rhs);
        std::vector<detail::Term> terms = combination({c.begin(), c.end() - 1});
        terms[1].c += b_h * c[p - 1];
        terms.push_back({-b_h * c[p - 1], x0_next});
        x = detail::lincomb(terms);
        x0s.push_front(x0_next);
        lambdas.push_front(-std::log(sigma_next));
        if (static_cast<int>(x0s.size()) > max_order_) x0s.pop_back(), lambdas.pop_back();
      }
      if (callback) callback(i, n, sigma_next);
    }
    if (denoise_to_zero_) {
      x = model(x, sigmas.back());
      if (callback) callback(n - 1, n, 0.0);
    }
    return x;
  }

 private:
  /// R_{jk} = r_k^j, j = 0..rows−1.
  static std::vector<std::vector<double>> vandermonde(const std::vector<double>& r, int rows) {
    std::vector<std::vector<double>> a(rows, std::vector<double>(rows));
    for (int j = 0; j < rows; ++j)
      for (int k = 0; k < rows; ++k) a[j][k] = std::pow(r[k], j);
    return a;
  }
  std::string variant_;
  int max_order_;
  detail::LowerOrderFinal lower_order_final_;
  bool thresholding_, afs_, denoise_to_zero_;
};

}  // namespace

std::unique_ptr<Sampler> detail::make_unipc(const UnipcOptions& options) { return std::make_unique<UniPc>(options); }

std::unique_ptr<Sampler> make_unipc(const KeyValueArgs& args) {
  const std::string variant = args.get_string("variant", "bh2");
  UnipcOptions options;
  options.order(args.get_int("order", options.order()))
      .lower_order_final(detail::read_lower_order_final_option(args, "unipc"))
      .thresholding(detail::read_thresholding_option(args, "unipc"))
      .afs(detail::read_afs(args))
      .denoise_to_zero(detail::read_denoise_to_zero(args));
  if (variant != "bh1" && variant != "bh2") fail("unipc: unknown variant '", variant, "'; valid: bh1, bh2");
  return detail::make_unipc(options.variant(variant == "bh1" ? UnipcVariant::Bh1 : UnipcVariant::Bh2));
}

}  // namespace scoreflow
