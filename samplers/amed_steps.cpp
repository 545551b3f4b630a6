#include "samplers/amed_steps.h"

#include <algorithm>
#include <cmath>

#include "samplers/lincomb.h"
#include "samplers/steps.h"
#include "samplers/typed.h"
#include "scoreflow/error.h"

namespace scoreflow::amed {
namespace {

/// Elementwise over per-sample vectors where either may be a single broadcast value.
template <typename F>
std::vector<double> zip(const std::vector<double>& u, const std::vector<double>& v, F f) {
  const size_t n = std::max(u.size(), v.size());
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = f(u[u.size() == 1 ? 0 : i], v[v.size() == 1 ? 0 : i]);
  return out;
}

torch::Tensor call(const Denoiser& denoise, const torch::Tensor& x, const std::vector<double>& sigma) {
  return sigma.size() == 1 ? denoise(x, sigma[0]) : denoise(x, sigma);
}

/// AMED-Solver: Euler to s, then x' = x + c(σ' − σ)·d_mid, the mean direction over the interval.
class AmedSolver : public Base {
 public:
  std::string name() const override { return "amed"; }
  /// x + (σ' − σ)·d_mid is second order only at the λ-midpoint (r = 1/2, DPM-Solver-2); learned
  /// c, a make it a per-grid method.
  int order(bool midpoint) const override { return midpoint ? 2 : 1; }

 protected:
  torch::Tensor to_mid(const torch::Tensor& x, const torch::Tensor& d, double sigma, const std::vector<double>&,
                       const torch::Tensor& s, const History&) const override {
    return steps::euler(x, sigma, s, d);
  }
  void to_next(Interval& step, const torch::Tensor& x, const torch::Tensor&, double sigma, double sigma_next,
               const torch::Tensor&, const torch::Tensor&, const History&, bool) const override {
    step.A = x;
    step.B = (sigma_next - sigma) * step.d_mid;
  }
};

/// AMED-Plugin on Euler: two Euler steps σ → s → σ', the second's increment scaled by c.
class EulerBase : public Base {
 public:
  std::string name() const override { return "euler"; }
  int order(bool) const override { return 1; }

 protected:
  torch::Tensor to_mid(const torch::Tensor& x, const torch::Tensor& d, double sigma, const std::vector<double>&,
                       const torch::Tensor& s, const History&) const override {
    return steps::euler(x, sigma, s, d);
  }
  void to_next(Interval& step, const torch::Tensor&, const torch::Tensor&, double, double sigma_next,
               const torch::Tensor& x_mid, const torch::Tensor& s, const History&, bool) const override {
    step.A = x_mid;
    step.B = (sigma_next - s) * step.d_mid;
  }
};

/// AMED-Plugin on iPNDM: both sub-steps Adams–Bashforth (fixed weights, order ≤ 4) on the slopes at
/// the previous intervals' σ and s.
class IpndmBase : public Base {
 public:
  std::string name() const override { return "ipndm"; }
  bool multistep() const override { return true; }
  void push_history(History& history, const torch::Tensor&, const torch::Tensor& d, double,
                    const Interval& step) const override {
    steps::push_slope(history.d, d.detach(), 3);
    steps::push_slope(history.d, step.d_mid.detach(), 3);
  }

 protected:
  torch::Tensor to_mid(const torch::Tensor& x, const torch::Tensor& d, double sigma, const std::vector<double>&,
                       const torch::Tensor& s, const History& history) const override {
    std::deque<torch::Tensor> ds = history.d;
    steps::push_slope(ds, d, 4);
    return x + (s - sigma) * steps::adams_bashforth(steps::adams_bashforth_weights(ds.size()), ds);
  }
  void to_next(Interval& step, const torch::Tensor&, const torch::Tensor& d, double, double sigma_next,
               const torch::Tensor& x_mid, const torch::Tensor& s, const History& history, bool) const override {
    std::deque<torch::Tensor> ds = history.d;
    steps::push_slope(ds, d, 3);
    steps::push_slope(ds, step.d_mid, 4);
    step.A = x_mid;
    step.B = (sigma_next - s) * steps::adams_bashforth(steps::adams_bashforth_weights(ds.size()), ds);
  }
};

/// steps::dpmpp_2m per sample from σ to t (vectors of size B or 1) with the data predictions x0 (at σ)
/// and x0_prev (at σ_prev; undefined: first order). Returns (the (t/σ)·x part, the increment) so
/// that the caller may scale the increment.
std::pair<torch::Tensor, torch::Tensor> dpmpp_2m(const torch::Tensor& x, const std::vector<double>& sigma,
                                                 const std::vector<double>& t, const torch::Tensor& x0,
                                                 const torch::Tensor& x0_prev, const std::vector<double>& sigma_prev) {
  const size_t n = std::max({sigma.size(), t.size(), x0_prev.defined() ? sigma_prev.size() : size_t(1)});
  auto at = [](const std::vector<double>& v, size_t i) { return v[v.size() == 1 ? 0 : i]; };
  std::vector<double> ratio(n), c0(n), c1(n);
  for (size_t i = 0; i < n; ++i) {
    const double r = x0_prev.defined() ? steps::dpmpp_ratio(at(sigma_prev, i), at(sigma, i), at(t, i)) : 0;
    const steps::DpmppStep k = steps::dpmpp_2m(at(sigma, i), at(t, i), r);
    ratio[i] = k.ratio, c0[i] = k.c0, c1[i] = k.c1;
  }
  torch::Tensor increment = column(c0, x) * x0;
  if (x0_prev.defined()) increment = increment + column(c1, x) * x0_prev;
  return {column(ratio, x) * x, increment};
}

/// AMED-Plugin on DPM-Solver++(2M): both sub-steps data-prediction steps on the previous D; the
/// solve's final sub-step is first order (lower_order_final).
class DpmppBase : public Base {
 public:
  std::string name() const override { return "dpmpp_2m"; }
  bool multistep() const override { return true; }
  void push_history(History& history, const torch::Tensor&, const torch::Tensor&, double,
                    const Interval& step) const override {
    history.x0_prev = step.x0_mid.detach();
    history.sigma_prev = step.s;
  }

 protected:
  torch::Tensor to_mid(const torch::Tensor& x, const torch::Tensor& d, double sigma, const std::vector<double>& s,
                       const torch::Tensor&, const History& history) const override {
    auto [scaled, increment] = dpmpp_2m(x, {sigma}, s, x - sigma * d, history.x0_prev, history.sigma_prev);
    return scaled + increment;
  }
  void to_next(Interval& step, const torch::Tensor& x, const torch::Tensor& d, double sigma, double sigma_next,
               const torch::Tensor& x_mid, const torch::Tensor&, const History&, bool last) const override {
    const torch::Tensor prev = last ? torch::Tensor() : x - sigma * d;
    std::tie(step.A, step.B) = dpmpp_2m(x_mid, step.s, {sigma_next}, step.x0_mid, prev, {sigma});
  }
};

}  // namespace

const Base& find_base(const std::string& name, const std::string& what) {
  static const AmedSolver amed;
  static const EulerBase euler;
  static const IpndmBase ipndm;
  static const DpmppBase dpmpp;
  for (const Base* base : {static_cast<const Base*>(&amed), static_cast<const Base*>(&euler),
                           static_cast<const Base*>(&ipndm), static_cast<const Base*>(&dpmpp)})
    if (base->name() == name) return *base;
  fail(what, " '", name, "' is unknown; valid: amed, euler, ipndm, dpmpp_2m");
}

torch::Tensor column(const std::vector<double>& values, const torch::Tensor& x) {
  // One value for the batch (fixed or table coefficients): a 0-dim CPU scalar, which arithmetic
  // with a GPU tensor takes as a kernel argument — a device copy would make the host wait.
  if (values.size() == 1 || std::all_of(values.begin(), values.end(), [&](double v) { return v == values[0]; }))
    return torch::scalar_tensor(values[0], torch::TensorOptions().dtype(torch::kFloat64)).to(x.scalar_type());
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = static_cast<int64_t>(values.size());
  torch::Tensor host = torch::tensor(values, torch::kFloat64).to(x.scalar_type());
  if (x.is_cuda()) return host.pin_memory().to(x.device(), /*non_blocking=*/true).reshape(shape);
  return host.reshape(shape);
}

torch::Tensor first_derivative(const Denoiser& denoise, const torch::Tensor& x, double sigma, bool analytic) {
  // AFS (Dockhorn et al. 2022; Zhou et al. 2024): the first model call replaced by D ≈ 0 scaled.
  if (analytic) return x / std::sqrt(1 + sigma * sigma);
  return to_d(x, sigma, denoise(x, sigma));
}

Interval Base::interval(const Denoiser& denoise, const torch::Tensor& x, const torch::Tensor& d, double sigma,
                        double sigma_next, const std::vector<double>& r, const std::vector<double>& a,
                        const History& history, bool last) const {
  Interval out;
  // Intermediate point s = σ'^r σ^{1−r} (geometric, i.e. a fraction r of the step in λ).
  out.s.resize(r.size());
  for (size_t i = 0; i < r.size(); ++i) out.s[i] = std::pow(sigma_next, r[i]) * std::pow(sigma, 1 - r[i]);
  const std::vector<double> a_s = zip(a, out.s, [](double aa, double ss) { return aa * ss; });
  const torch::Tensor s = column(out.s, x);
  // First sub-step σ → s with the base solver, then the one model call at the intermediate point,
  // time input scaled by a, then the second sub-step to σ', its increment to be scaled by c.
  const torch::Tensor x_mid = to_mid(x, d, sigma, out.s, s, history);
  out.x0_mid = call(denoise, x_mid, a_s);
  out.d_mid = (x_mid - out.x0_mid) / s;
  to_next(out, x, d, sigma, sigma_next, x_mid, s, history, last);
  return out;
}

void Base::push_history(History&, const torch::Tensor&, const torch::Tensor&, double, const Interval&) const {}

torch::Tensor solve(const Base& base, const Denoiser& denoise, torch::Tensor x, const std::vector<double>& sigmas,
                    int intervals, bool afs, const CoefficientSource& coefficients,
                    const std::function<void(int, double)>& callback) {
  History history;
  for (int i = 0; i < intervals; ++i) {
    const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
    const bool analytic = afs && i == 0;
    torch::Tensor d = first_derivative(denoise, x, sigma, analytic);
    const AmedCoefficients k = coefficients(i, x, sigma, sigma_next, analytic);
    Interval step = base.interval(denoise, x, d, sigma, sigma_next, k.r, k.a, history, i == intervals - 1);
    base.push_history(history, x, d, sigma, step);
    x = step.A + column(k.c, x) * step.B;
    if (callback) callback(i, sigma_next);
  }
  return x;
}

std::vector<torch::Tensor> teacher_states(const std::string& teacher, const Denoiser& denoise, torch::Tensor x,
                                          const std::vector<double>& fine, int stride) {
  std::vector<torch::Tensor> states;
  const int n = static_cast<int>(fine.size()) - 1;
  if (teacher == "heun") {
    // Single-step: the heun sampler itself (no churn) on each student interval's stretch of `fine`;
    // σ' > 0 there, so every step is corrected.
    const std::unique_ptr<Sampler> heun = detail::make_heun(HeunOptions());
    NoiseSource unused({0});
    for (int i = 0; i + stride <= n; i += stride) {
      const std::vector<double> stretch(fine.begin() + i, fine.begin() + i + stride + 1);
      x = heun->sample(denoise, x, stretch, unused, {});
      states.push_back(x);
    }
    return states;
  }
  // Multistep: the samplers' loops (ipndm.cpp, dpmpp_multistep.cpp) with the same primitives, the
  // state kept at every stride-th point.
  if (teacher != "ipndm" && teacher != "dpmpp_2m")
    fail("AMED teacher '", teacher, "' is unknown; valid: heun, ipndm, dpmpp_2m");
  std::deque<torch::Tensor> ds;
  torch::Tensor x0_prev;
  for (int i = 0; i < n; ++i) {
    const double sigma = fine[i], sigma_next = fine[i + 1];
    if (teacher == "ipndm") {
      steps::push_slope(ds, to_d(x, sigma, denoise(x, sigma)), 4);
      x = steps::adams_bashforth(x, sigma_next - sigma, steps::adams_bashforth_weights(ds.size()), ds);
    } else {
      torch::Tensor x0 = denoise(x, sigma);
      const bool first_order = i == 0 || i == n - 1;  // warm-up and lower_order_final
      const steps::DpmppStep k =
          steps::dpmpp_2m(sigma, sigma_next, first_order ? 0 : steps::dpmpp_ratio(fine[i - 1], sigma, sigma_next));
      x = detail::lincomb({{k.ratio, x}, {k.c0, x0}, {k.c1, x0_prev}});
      x0_prev = x0;
    }
    if ((i + 1) % stride == 0) states.push_back(x);
  }
  return states;
}

}  // namespace scoreflow::amed
