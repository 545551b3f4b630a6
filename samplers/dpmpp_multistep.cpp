#include <cmath>
#include <deque>

#include "samplers/common.h"
#include "samplers/lincomb.h"
#include "samplers/steps.h"
#include "samplers/typed.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"

namespace scoreflow {
namespace {

/// DPM-Solver++(2M) and (3M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2 and its third-order
/// multistep extension), data prediction in λ = −log σ: with h = λ' − λ,
///   x' = (σ'/σ)·x − (e^{−h} − 1)·D̂,
/// where D̂ = D_i (1st order), (1 + 1/(2r))·D_i − 1/(2r)·D_{i−1} (2M, r = h_{i−1}/h), or the Taylor
/// form with φ-functions (3M). By default every choice is the official code's
/// (LuChengTHU/dpm-solver `multistep_dpm_solver_*_update`, tests/peer_parity_test.cpp): warm-up (step
/// i uses at most order i + 1), lower_order_final only below 10 steps (`always`: diff-sampler's rule),
/// and the 3M second difference D2 = (d1_0 − d1_1)/(r0 + r1), which is half of h²·D'' and leaves
/// the method second order (d2=taylor: the Taylor-consistent 2/(r0 + r1), third order; docs/samplers.md
/// measures both). The step into σ = 0 (λ' = ∞) is explicitly x ← D_i. One NFE per step (the call at
/// σ_N = 0 is never made): N for N steps. thresholding=dynamic passes each x̂0 through Imagen's
/// dynamic thresholding (off in the official code by default, always on in diff-sampler).
class DpmppMultistep : public Sampler {
 public:
  explicit DpmppMultistep(const DpmppOptions& options)
      : max_order_(options.order()),
        lower_order_final_(detail::lower_order_rule(options.lower_order_final(), detail::LowerOrderFinal::Below10)),
        taylor_d2_(max_order_ == 3 && options.d2() == DpmppD2::Taylor),
        thresholding_(options.thresholding() == Thresholding::Dynamic),
        afs_(options.afs()),
        denoise_to_zero_(options.denoise_to_zero()) {
    if (max_order_ != 2 && max_order_ != 3) fail("dpmpp: order must be 2 or 3, got ", max_order_);
  }
  std::string name() const override { return max_order_ == 2 ? "dpmpp_2m" : "dpmpp_3m"; }
  /// The official 3M's halved second difference leaves an O(h³) local error: second order.
  int order() const override { return max_order_ == 3 && !taylor_d2_ ? 2 : max_order_; }
  int64_t nfe(int steps) const override { return steps - afs_; }
  int64_t nfe_above_zero(int steps) const override { return steps - afs_ + denoise_to_zero_; }

  torch::Tensor sample(const Denoiser& denoise, torch::Tensor x, const std::vector<double>& grid, NoiseSource&,
                       const StepCallback& callback) const override {
    check_grid(*this, grid);
    const std::vector<double> sigmas = detail::solve_grid(grid, denoise_to_zero_);
    const int n = static_cast<int>(grid.size()) - 1, m = static_cast<int>(sigmas.size()) - 1;
    detail::ModelCalls model(denoise, afs_);
    std::deque<torch::Tensor> x0s;  // D at σ_i, σ_{i−1}, … (newest first)
    std::deque<double> lambdas;     // λ at the same points
    for (int i = 0; i < m; ++i) {
      const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
      x0s.push_front(thresholding_ ? detail::dynamic_threshold(model(x, sigma)) : model(x, sigma));
      lambdas.push_front(-std::log(sigma));
      if (static_cast<int>(x0s.size()) > max_order_) x0s.pop_back(), lambdas.pop_back();
      if (sigma_next == 0) {
        // λ' = ∞: the exponential integrator's step is the data prediction itself.
        x = x0s[0];
      } else {
        int order = std::min<int>(max_order_, x0s.size());
        // The final denoise counts as the last step, so that a grid ending at σ_N > 0 with
        // denoise_to_zero is the same computation as that grid with 0 appended.
        const int total = m + denoise_to_zero_;
        order = detail::final_order(lower_order_final_, order, i, total);
        const double h = std::log(sigma / sigma_next);
        // x' = (σ'/σ)·x − φ₁·D̂ with D̂ a combination of the stored D's; its coefficients are worked
        // out here in double and applied in one pass per tensor (detail::lincomb). Orders 1 and 2
        // (D̂ = D_i + (D_i − D_{i−1})/(2r)) are steps::dpmpp_2m's.
        const steps::DpmppStep k = steps::dpmpp_2m(sigma, sigma_next, order == 2 ? (lambdas[0] - lambdas[1]) / h : 0);
        double c0 = k.c0, c1 = k.c1, c2 = 0;
        if (order == 3) {
          // 3M: D1 ≈ h·dD/dλ, D2 from divided differences on the last three points:
          //   d1_0 = (D_i − D_{i−1})/r0, d1_1 = (D_{i−1} − D_{i−2})/r1,
          //   D1 = d1_0 + r0/(r0 + r1)·(d1_0 − d1_1), D2 = w·(d1_0 − d1_1),
          // and x' += φ₂·D1 − φ₃·D2. d1_0 − d1_1 ≈ h²(r0 + r1)/2·D'', so w = 2/(r0 + r1) (d2=taylor)
          // gives D2 ≈ h²·D'', the Taylor term; the official code and k-diffusion use w = 1/(r0 + r1),
          // half of it (an O(h³) local error: second order on the Gaussian test).
          const double r0 = (lambdas[0] - lambdas[1]) / h, r1 = (lambdas[1] - lambdas[2]) / h;
          const double q = r0 / (r0 + r1), w = (taylor_d2_ ? 2 : 1) / (r0 + r1);
          const double phi_1 = -k.c0;  // e^{−h} − 1
          const double phi_2 = phi_1 / h + 1, phi_3 = phi_2 / h - 0.5;
          const double u = phi_2 * (1 + q) - phi_3 * w;  // coefficient of d1_0
          const double v = -phi_2 * q + phi_3 * w;       // coefficient of d1_1
          c0 += u / r0;
          c1 = -u / r0 + v / r1;
          c2 = -v / r1;
        }
        std::vector<detail::Term> terms{{k.ratio, x}, {c0, x0s[0]}};
        if (order >= 2) terms.push_back({c1, x0s[1]});
        if (order >= 3) terms.push_back({c2, x0s[2]});
        x = detail::lincomb(terms);
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
  int max_order_;
  detail::LowerOrderFinal lower_order_final_;
  bool taylor_d2_, thresholding_, afs_, denoise_to_zero_;
};

}  // namespace

std::unique_ptr<Sampler> detail::make_dpmpp(const DpmppOptions& options) {
  return std::make_unique<DpmppMultistep>(options);
}

namespace {

/// The "k=v" options of dpmpp_2m (order 2) and dpmpp_3m (order 3, which also takes d2).
DpmppOptions read_dpmpp_options(const KeyValueArgs& args, int order) {
  const std::string sampler = order == 2 ? "dpmpp_2m" : "dpmpp_3m";
  DpmppOptions options;
  options.order(order).lower_order_final(detail::read_lower_order_final_option(args, sampler));
  const std::string d2 = order == 3 ? args.get_string("d2", "official") : "official";
  options.thresholding(detail::read_thresholding_option(args, sampler))
      .afs(detail::read_afs(args))
      .denoise_to_zero(detail::read_denoise_to_zero(args));
  if (d2 != "official" && d2 != "taylor") fail("dpmpp_3m: unknown d2 '", d2, "'; valid: official, taylor");
  return options.d2(d2 == "taylor" ? DpmppD2::Taylor : DpmppD2::Official);
}

}  // namespace

std::unique_ptr<Sampler> make_dpmpp_2m(const KeyValueArgs& args) {
  return detail::make_dpmpp(read_dpmpp_options(args, 2));
}
std::unique_ptr<Sampler> make_dpmpp_3m(const KeyValueArgs& args) {
  return detail::make_dpmpp(read_dpmpp_options(args, 3));
}

}  // namespace scoreflow
