#include "samplers/amed_steps.h"

#include <algorithm>
#include <cmath>

#include "scoreflow/error.h"

namespace scoreflow::amed {
namespace {

/// iPNDM's Adams–Bashforth combination of d with the history (newest last), order 1–4.
torch::Tensor adams_bashforth(const torch::Tensor& d, const std::vector<torch::Tensor>& h, int order) {
  const size_t n = h.size();
  switch (order) {
    case 1:
      return d;
    case 2:
      return (3 * d - h[n - 1]) / 2;
    case 3:
      return (23 * d - 16 * h[n - 1] + 5 * h[n - 2]) / 12;
    default:
      return (55 * d - 59 * h[n - 1] + 37 * h[n - 2] - 9 * h[n - 3]) / 24;
  }
}

/// Elementwise over per-sample vectors where either may be a single broadcast value.
template <typename F>
std::vector<double> zip(const std::vector<double>& u, const std::vector<double>& v, F f) {
  const size_t n = std::max(u.size(), v.size());
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = f(u[u.size() == 1 ? 0 : i], v[v.size() == 1 ? 0 : i]);
  return out;
}

std::vector<double> map(const std::vector<double>& u, double (*f)(double)) {
  std::vector<double> out(u.size());
  for (size_t i = 0; i < u.size(); ++i) out[i] = f(u[i]);
  return out;
}

torch::Tensor call(const Denoiser& denoise, const torch::Tensor& x, const std::vector<double>& sigma) {
  return sigma.size() == 1 ? denoise(x, sigma[0]) : denoise(x, sigma);
}

/// DPM-Solver++(2M) in σ-space (α = 1, λ = −log σ; Lu et al. 2022, Alg. 2) from σ to t with the
/// data predictions x0 (at σ) and x0_prev (at σ_prev; undefined: first order):
/// x_t = (t/σ)·x − expm1(−h)·((1 + 1/2r)·x0 − x0_prev/2r), r = h_prev/h. Returns (the (t/σ)·x
/// part, the increment) so that the caller may scale the increment.
std::pair<torch::Tensor, torch::Tensor> dpmpp_2m(const torch::Tensor& x, const std::vector<double>& sigma,
                                                 const std::vector<double>& t, const torch::Tensor& x0,
                                                 const torch::Tensor& x0_prev, const std::vector<double>& sigma_prev) {
  const std::vector<double> h = zip(sigma, t, [](double s, double tt) { return std::log(s / tt); });
  const std::vector<double> phi = map(h, [](double v) { return std::expm1(-v); });
  torch::Tensor x0_eff = x0;
  if (x0_prev.defined()) {
    const std::vector<double> h_prev = zip(sigma_prev, sigma, [](double p, double s) { return std::log(p / s); });
    const std::vector<double> k = zip(h_prev, h, [](double hp, double hh) { return 1 / (2 * (hp / hh)); });
    x0_eff = (1 + column(k, x)) * x0 - column(k, x) * x0_prev;
  }
  return {column(zip(t, sigma, [](double tt, double s) { return tt / s; }), x) * x, -column(phi, x) * x0_eff};
}

}  // namespace

Base parse_base(const std::string& name, const std::string& what) {
  if (name == "amed") return Base::Amed;
  if (name == "euler") return Base::Euler;
  if (name == "ipndm") return Base::Ipndm;
  if (name == "dpmpp_2m") return Base::DpmPP2M;
  fail(what, " '", name, "' is unknown; valid: amed, euler, ipndm, dpmpp_2m");
}

std::string base_name(Base base) {
  switch (base) {
    case Base::Amed:
      return "amed";
    case Base::Euler:
      return "euler";
    case Base::Ipndm:
      return "ipndm";
    default:
      return "dpmpp_2m";
  }
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

Interval interval(Base base, const Denoiser& denoise, const torch::Tensor& x, const torch::Tensor& d, double sigma,
                  double sigma_next, const std::vector<double>& r, const std::vector<double>& a, const History& history,
                  bool last) {
  Interval out;
  // Intermediate point s = σ'^r σ^{1−r} (geometric, i.e. a fraction r of the step in λ).
  out.s.resize(r.size());
  for (size_t i = 0; i < r.size(); ++i) out.s[i] = std::pow(sigma_next, r[i]) * std::pow(sigma, 1 - r[i]);
  const std::vector<double> sig{sigma}, sig_next{sigma_next};
  const std::vector<double> a_s = zip(a, out.s, [](double aa, double ss) { return aa * ss; });
  const torch::Tensor s = column(out.s, x);

  // First sub-step σ → s with the base solver.
  torch::Tensor x_mid;
  if (base == Base::Ipndm) {
    const int order = std::min<int>(4, static_cast<int>(history.d.size()) + 1);
    x_mid = x + (s - sigma) * adams_bashforth(d, history.d, order);
  } else if (base == Base::DpmPP2M) {
    auto [scaled, increment] = dpmpp_2m(x, sig, out.s, x - sigma * d, history.x0_prev, history.sigma_prev);
    x_mid = scaled + increment;
  } else {
    x_mid = x + (s - sigma) * d;
  }
  // The one model call: at the intermediate point, time input scaled by a.
  out.x0_mid = call(denoise, x_mid, a_s);
  out.d_mid = (x_mid - out.x0_mid) / s;

  // Second sub-step to σ', its increment to be scaled by c.
  switch (base) {
    case Base::Amed:  // x' = x + c(σ' − σ)·d_mid: the mean direction over the whole interval.
      out.A = x;
      out.B = (sigma_next - sigma) * out.d_mid;
      break;
    case Base::Euler:
      out.A = x_mid;
      out.B = (sigma_next - s) * out.d_mid;
      break;
    case Base::Ipndm: {
      std::vector<torch::Tensor> h = history.d;
      h.push_back(d);
      if (h.size() > 3) h.erase(h.begin());
      const int order = std::min<int>(4, static_cast<int>(h.size()) + 1);
      out.A = x_mid;
      out.B = (sigma_next - s) * adams_bashforth(out.d_mid, h, order);
      break;
    }
    case Base::DpmPP2M: {
      // lower_order_final: the solve's final sub-step is first order.
      torch::Tensor prev = last ? torch::Tensor() : x - sigma * d;
      auto [scaled, increment] = dpmpp_2m(x_mid, out.s, sig_next, out.x0_mid, prev, sig);
      out.A = scaled;
      out.B = increment;
      break;
    }
  }
  return out;
}

void push_history(Base base, History& history, const torch::Tensor& x, const torch::Tensor& d, double sigma,
                  const Interval& step) {
  if (base == Base::Ipndm) {
    for (const torch::Tensor& v : {d, step.d_mid}) {
      history.d.push_back(v.detach());
      if (history.d.size() > 3) history.d.erase(history.d.begin());
    }
  } else if (base == Base::DpmPP2M) {
    history.x0_prev = step.x0_mid.detach();
    history.sigma_prev = step.s;
  }
}

torch::Tensor solve(Base base, const Denoiser& denoise, torch::Tensor x, const std::vector<double>& sigmas,
                    int intervals, bool afs, const CoefficientSource& coefficients,
                    const std::function<void(int, double)>& callback) {
  History history;
  for (int i = 0; i < intervals; ++i) {
    const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
    const bool analytic = afs && i == 0;
    torch::Tensor d = first_derivative(denoise, x, sigma, analytic);
    const AmedCoefficients k = coefficients(i, x, sigma, sigma_next, analytic);
    Interval step = interval(base, denoise, x, d, sigma, sigma_next, k.r, k.a, history, i == intervals - 1);
    push_history(base, history, x, d, sigma, step);
    x = step.A + column(k.c, x) * step.B;
    if (callback) callback(i, sigma_next);
  }
  return x;
}

std::vector<torch::Tensor> teacher_states(const std::string& teacher, const Denoiser& denoise, torch::Tensor x,
                                          const std::vector<double>& fine, int stride) {
  std::vector<torch::Tensor> states;
  const int n = static_cast<int>(fine.size()) - 1;
  std::vector<torch::Tensor> d_hist;
  torch::Tensor x0_prev;
  for (int i = 0; i < n; ++i) {
    const double sigma = fine[i], sigma_next = fine[i + 1];
    if (teacher == "heun") {
      // Heun (EDM Alg. 2 without churn); σ' > 0 on the refined grid, so always corrected.
      torch::Tensor d = to_d(x, sigma, denoise(x, sigma));
      torch::Tensor x_euler = x + (sigma_next - sigma) * d;
      torch::Tensor d_next = to_d(x_euler, sigma_next, denoise(x_euler, sigma_next));
      x = x + (sigma_next - sigma) * 0.5 * (d + d_next);
    } else if (teacher == "ipndm") {
      torch::Tensor d = to_d(x, sigma, denoise(x, sigma));
      x = x + (sigma_next - sigma) * adams_bashforth(d, d_hist, std::min<int>(4, static_cast<int>(d_hist.size()) + 1));
      d_hist.push_back(d);
      if (d_hist.size() > 3) d_hist.erase(d_hist.begin());
    } else if (teacher == "dpmpp_2m") {
      torch::Tensor x0 = denoise(x, sigma);
      const bool first_order = i == 0 || i == n - 1;  // warm-up and lower_order_final
      auto [scaled, increment] =
          dpmpp_2m(x, {sigma}, {sigma_next}, x0, first_order ? torch::Tensor() : x0_prev, {fine[std::max(i - 1, 0)]});
      x = scaled + increment;
      x0_prev = x0;
    } else {
      fail("AMED teacher '", teacher, "' is unknown; valid: heun, ipndm, dpmpp_2m");
    }
    if ((i + 1) % stride == 0) states.push_back(x);
  }
  return states;
}

}  // namespace scoreflow::amed
