/// LD3's student (include/scoreflow/ld3.h): euler, ipndm, dpmpp_2m and unipc written on a tensor σ
/// grid, step for step as samplers/euler.cpp, ipndm.cpp, dpmpp_multistep.cpp and unipc.cpp compute
/// them, so that autograd reaches the σ's (Tong et al., ICLR 2025, §3: backpropagation through the solver).
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <utility>

#include "samplers/common.h"
#include "scoreflow/error.h"
#include "scoreflow/ld3.h"
#include "scoreflow/registry.h"

namespace scoreflow {
namespace {

using torch::Tensor;
using Terms = std::vector<std::pair<Tensor, Tensor>>;  // (0-dim float64 coefficient, tensor)

/// The grid as 0-dim float64 tensors (what autograd reaches) and as host values (the structural
/// choices: a step into 0, the warm-up and the final orders).
struct Grid {
  std::vector<Tensor> t;
  std::vector<double> v;
  explicit Grid(const Tensor& sigmas) {
    const Tensor host = sigmas.detach().to(torch::kCPU, torch::kFloat64).contiguous();
    v.assign(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
    for (int64_t i = 0; i < sigmas.numel(); ++i) t.push_back(sigmas[i]);
  }
  int steps() const { return static_cast<int>(v.size()) - 1; }
};

/// Σ c_k·t_k in term order.
Tensor sum(const Terms& terms) {
  Tensor out = terms[0].first * terms[0].second;
  for (size_t k = 1; k < terms.size(); ++k) out = out + terms[k].first * terms[k].second;
  return out;
}

/// The step of the central difference in log σ: truncation ~δ², rounding ~ε/δ.
double log_sigma_step(torch::ScalarType dtype) { return dtype == torch::kFloat64 ? 1e-5 : 3e-3; }

/// D(x, σ_i) as samplers/common.h's ModelCalls gives it (AFS: D = x − σ·x/sqrt(1 + σ²) for the first
/// call), with autograd to σ_i: D + (σ − stop_grad(σ))·∂D/∂σ, whose value is D exactly. The model takes
/// σ as a host number, so ∂D/∂σ is a central difference in log σ (two more calls, only when σ_i
/// requires grad); ∂D/∂x is the model's own autograd.
class Calls {
 public:
  Calls(const Denoiser& denoise, bool afs) : denoise_(denoise), afs_(afs) {}
  Tensor operator()(const Tensor& x, const Grid& g, int i) {
    const Tensor& sigma = g.t[i];
    const bool analytic = afs_ && first_;
    first_ = false;
    if (analytic) return x - sigma * x / torch::sqrt(1 + sigma * sigma);
    Tensor d = denoise_(x, g.v[i]);
    if (at::GradMode::is_enabled() && sigma.requires_grad()) {
      const double delta = log_sigma_step(x.scalar_type()), s = g.v[i];
      Tensor slope;
      {
        torch::NoGradGuard no_grad;
        const Tensor xd = x.detach();
        slope = (denoise_(xd, s * std::exp(delta)) - denoise_(xd, s * std::exp(-delta))) / (2 * delta * s);
      }
      d = d + (sigma - sigma.detach()) * slope;
    }
    return d;
  }

 private:
  const Denoiser& denoise_;
  bool afs_;
  bool first_ = true;
};

/// Euler (samplers/euler.cpp).
Tensor euler(Calls& model, Tensor x, const Grid& g) {
  for (int i = 0; i < g.steps(); ++i) {
    const Tensor d = (x - model(x, g, i)) / g.t[i];
    // Euler step.
    x = x + (g.t[i + 1] - g.t[i]) * d;
  }
  return x;
}

/// iPNDM with the fixed Adams–Bashforth coefficients and warm-up (samplers/ipndm.cpp).
Tensor ipndm(Calls& model, Tensor x, const Grid& g, int max_order) {
  static const std::vector<std::vector<double>> kFixed = {
      {1.0}, {3.0 / 2, -1.0 / 2}, {23.0 / 12, -16.0 / 12, 5.0 / 12}, {55.0 / 24, -59.0 / 24, 37.0 / 24, -9.0 / 24}};
  std::deque<Tensor> ds;  // d at σ_i, σ_{i−1}, … (newest first)
  for (int i = 0; i < g.steps(); ++i) {
    ds.push_front((x - model(x, g, i)) / g.t[i]);
    if (static_cast<int>(ds.size()) > max_order) ds.pop_back();
    const std::vector<double>& w = kFixed[ds.size() - 1];
    const Tensor h = g.t[i + 1] - g.t[i];
    // Adams–Bashforth step.
    Terms terms{{torch::ones_like(h), x}};
    for (size_t j = 0; j < ds.size(); ++j) terms.push_back({h * w[j], ds[j]});
    x = sum(terms);
  }
  return x;
}

/// DPM-Solver++(2M) in λ = −log σ (samplers/dpmpp_multistep.cpp).
Tensor dpmpp_2m(Calls& model, Tensor x, const Grid& g, detail::LowerOrderFinal rule) {
  std::deque<Tensor> x0s, lambdas;  // D and λ at σ_i, σ_{i−1} (newest first)
  const int m = g.steps();
  for (int i = 0; i < m; ++i) {
    const Tensor &sigma = g.t[i], &sigma_next = g.t[i + 1];
    x0s.push_front(model(x, g, i));
    lambdas.push_front(-torch::log(sigma));
    if (x0s.size() > 2) x0s.pop_back(), lambdas.pop_back();
    if (g.v[i + 1] == 0) {
      x = x0s[0];  // λ' = ∞: the data prediction
      continue;
    }
    const int order = detail::final_order(rule, std::min<int>(2, x0s.size()), i, m);
    const Tensor h = torch::log(sigma / sigma_next);
    const Tensor phi_1 = torch::expm1(-h);
    Terms terms{{sigma_next / sigma, x}, {-phi_1, x0s[0]}};
    if (order == 2) {
      // D̂ = D_i + (D_i − D_{i−1})/(2r).
      const Tensor r = (lambdas[0] - lambdas[1]) / h;
      terms[1].first = terms[1].first - phi_1 / (2 * r);
      terms.push_back({phi_1 / (2 * r), x0s[1]});
    }
    x = sum(terms);
  }
  return x;
}

/// A·y = b for the small UniPC systems, A[j][k] = r_k^j (j < rows).
std::vector<Tensor> solve_vandermonde(const std::vector<Tensor>& r, const std::vector<Tensor>& b) {
  const int64_t n = static_cast<int64_t>(b.size());
  std::vector<Tensor> rows;
  for (int64_t j = 0; j < n; ++j) {
    std::vector<Tensor> row;
    for (int64_t k = 0; k < n; ++k) row.push_back(torch::pow(r[k], static_cast<double>(j)));
    rows.push_back(torch::stack(row));
  }
  const Tensor y = at::linalg_solve(torch::stack(rows), torch::stack(b));
  std::vector<Tensor> out;
  for (int64_t k = 0; k < n; ++k) out.push_back(y[k]);
  return out;
}

/// UniPC, predictor UniP-p and corrector UniC-p (samplers/unipc.cpp).
Tensor unipc(Calls& model, Tensor x, const Grid& g, int max_order, detail::LowerOrderFinal rule, bool bh1) {
  const int m = g.steps();
  const Tensor half = torch::full({}, 0.5, torch::kFloat64), one = torch::full({}, 1.0, torch::kFloat64);
  std::deque<Tensor> x0s, lambdas;  // D and λ at σ_i, σ_{i−1}, … (newest first)
  for (int i = 0; i < m; ++i) {
    const Tensor &sigma = g.t[i], &sigma_next = g.t[i + 1];
    if (i == 0) x0s.push_front(model(x, g, 0)), lambdas.push_front(-torch::log(sigma));
    if (g.v[i + 1] == 0) {
      x = x0s[0];  // λ' = ∞: the data prediction
      break;
    }
    const int p = detail::final_order(rule, std::min<int>(max_order, x0s.size()), i, m);
    const Tensor h = torch::log(sigma / sigma_next), hh = -h;
    const Tensor b_h = bh1 ? hh : torch::expm1(hh);
    std::vector<Tensor> r;
    for (int k = 1; k < p; ++k) r.push_back((lambdas[k] - lambdas[0]) / h);
    // j!·hh·φ_{j+1}(hh)/B(h), j = 1..p.
    std::vector<Tensor> rhs;
    Tensor phi = torch::expm1(hh) / hh - 1;
    double factorial = 1;
    for (int j = 1; j <= p; ++j) {
      rhs.push_back(phi * factorial / b_h);
      factorial *= j + 1;
      phi = phi / hh - 1 / factorial;
    }
    auto combination = [&](const std::vector<Tensor>& w) {
      Terms terms{{sigma_next / sigma, x}, {-torch::expm1(hh), x0s[0]}};
      for (size_t k = 0; k < w.size(); ++k) {
        terms[1].first = terms[1].first + b_h * w[k] / r[k];
        terms.push_back({-b_h * w[k] / r[k], x0s[k + 1]});
      }
      return terms;
    };
    // Predictor (UniP-p).
    std::vector<Tensor> a;
    if (p == 2) a = {half};
    if (p > 2) a = solve_vandermonde(r, std::vector<Tensor>(rhs.begin(), rhs.end() - 1));
    const Tensor x_pred = sum(combination(a));
    if (i == m - 1) {
      x = x_pred;
    } else {
      // Corrector (UniC-p) with the model output the next step needs anyway.
      const Tensor x0_next = model(x_pred, g, i + 1);
      std::vector<Tensor> rc = r;
      rc.push_back(one);
      const std::vector<Tensor> c = p > 1 ? solve_vandermonde(rc, rhs) : std::vector<Tensor>{half};
      Terms terms = combination(std::vector<Tensor>(c.begin(), c.end() - 1));
      terms[1].first = terms[1].first + b_h * c[p - 1];
      terms.push_back({-b_h * c[p - 1], x0_next});
      x = sum(terms);
      x0s.push_front(x0_next);
      lambdas.push_front(-torch::log(sigma_next));
      if (static_cast<int>(x0s.size()) > max_order) x0s.pop_back(), lambdas.pop_back();
    }
  }
  return x;
}

}  // namespace

const std::vector<std::string>& ld3_student_names() {
  static const std::vector<std::string> names = {"euler", "ipndm", "dpmpp_2m", "unipc"};
  return names;
}

Ld3Student::Ld3Student(const std::string& sampler, const std::string& args) : name_(sampler), args_(args) {
  const auto& names = ld3_student_names();
  if (std::find(names.begin(), names.end(), sampler) == names.end())
    fail(Field{"sampler"}, " '", sampler, "' has no differentiable LD3 student; valid: ", join(names));
  sampler_ = make_sampler(sampler, args);  // the library's own checks of the args
  const KeyValueArgs a(args, "sampler arg");
  if (a.get_bool("denoise_to_zero", false))
    fail(Field{"sampler"}, " ", sampler, ": LD3 has no student for denoise_to_zero=true; search with final none");
  if (a.get_string("thresholding", "none") != "none")
    fail(Field{"sampler"}, " ", sampler, ": LD3 has no student for thresholding=", a.get_string("thresholding", ""));
  afs_ = detail::read_afs(a);
  if (sampler == "ipndm") {
    max_order_ = a.get_int("max_order", 4);
  } else if (sampler == "dpmpp_2m") {
    max_order_ = 2;
    lower_order_final_ =
        static_cast<int>(detail::read_lower_order_final(a, "dpmpp_2m", detail::LowerOrderFinal::Below10));
  } else if (sampler == "unipc") {
    max_order_ = a.get_int("order", 2);
    bh1_ = a.get_string("variant", "bh2") == "bh1";
    lower_order_final_ = static_cast<int>(detail::read_lower_order_final(a, "unipc", detail::LowerOrderFinal::Always));
  }
}

torch::Tensor Ld3Student::sample(const Denoiser& denoise, const torch::Tensor& x, const torch::Tensor& sigmas) const {
  if (sigmas.dim() != 1 || sigmas.scalar_type() != torch::kFloat64)
    fail(Field{"sigmas"}, " must be a 1-D float64 tensor, got ", sigmas.dim(), "-D ",
         c10::toString(sigmas.scalar_type()));
  const Grid g(sigmas);
  check_grid(*sampler_, g.v);
  Calls model(denoise, afs_);
  const auto rule = static_cast<detail::LowerOrderFinal>(lower_order_final_);
  if (name_ == "euler") return euler(model, x, g);
  if (name_ == "ipndm") return ipndm(model, x, g, max_order_);
  if (name_ == "dpmpp_2m") return dpmpp_2m(model, x, g, rule);
  return unipc(model, x, g, max_order_, rule, bh1_);
}

}  // namespace scoreflow
