// Lipschitz estimates of the σ-space score by power iteration on autograd JVPs/VJPs.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>

#include <functional>

#include "scoreflow/error.h"
#include "scoreflow/wbound.h"

namespace scoreflow::eval {
namespace {

torch::Tensor rowdot(const torch::Tensor& a, const torch::Tensor& b) { return (a * b).flatten(1).sum(1); }

/// Each row scaled to unit norm; rows of zeros stay zero. (Not a clamp of the norm at a tiny value:
/// in float32 1e-300 is 0, and the exact zero rows a linear denoiser gives the shifted iteration
/// became 0/0 = NaN.)
torch::Tensor normalise(const torch::Tensor& v) {
  std::vector<int64_t> shape(v.dim(), 1);
  shape[0] = v.size(0);
  const torch::Tensor n = v.flatten(1).norm(2, 1).reshape(shape);
  return torch::where(n > 0, v / n, torch::zeros_like(v));
}

torch::Tensor per_row(const torch::Tensor& s, const torch::Tensor& like) {
  std::vector<int64_t> shape(like.dim(), 1);
  shape[0] = like.size(0);
  return s.reshape(shape).to(like.scalar_type());
}

/// Power iteration for the dominant eigenpair of a symmetric operator, per row: returns the
/// Rayleigh quotient vᵀAv of the final unit v.
torch::Tensor power_iteration(const std::function<torch::Tensor(const torch::Tensor&)>& apply, torch::Tensor v,
                              int iterations) {
  v = normalise(v);
  for (int i = 0; i < iterations; ++i) v = normalise(apply(v));
  return rowdot(v, apply(v)).to(torch::kFloat64);
}

}  // namespace

JacobianExtremes score_jacobian_extremes(const Model& model, const torch::Tensor& x_in, double sigma, int iterations,
                                         uint64_t seed, const std::vector<torch::Tensor>& conds) {
  if (iterations < 1) fail(Field{"iterations"}, " must be >= 1, got ", iterations);
  torch::AutoGradMode grad_mode(true);
  torch::Tensor x = x_in.detach().clone().requires_grad_(true);
  std::vector<torch::Tensor> batch_conds;  // one shared row expanded to the batch
  for (const torch::Tensor& c : conds) {
    std::vector<int64_t> size(c.sizes().begin(), c.sizes().end());
    size[0] = x.size(0);
    batch_conds.push_back(c.size(0) == 1 ? c.expand(size).contiguous() : c);
  }
  torch::Tensor denoised =
      conds.empty() ? model.denoise(x, {sigma}, {}) : model.denoise_conditioned(x, {sigma}, {}, batch_conds);
  if (!denoised.requires_grad())
    fail("model ", model.name(), " is not differentiable in x (its denoiser output carries no gradient); ",
         "the Lipschitz estimate needs autograd through the network");
  // g(u) = Jᵀu, kept as a graph in u so that ∂(g·v)/∂u = Jv (JVP by double backward).
  torch::Tensor u = torch::zeros_like(denoised).requires_grad_(true);
  torch::Tensor g = torch::autograd::grad({denoised}, {x}, {u}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  auto jt = [&](const torch::Tensor& w) {
    return torch::autograd::grad({denoised}, {x}, {w}, /*retain_graph=*/true)[0].detach();
  };
  auto jv = [&](const torch::Tensor& v) {
    if (!g.requires_grad()) return torch::zeros_like(v);  // D does not depend on x at all
    auto out =
        torch::autograd::grad({g}, {u}, {v}, /*retain_graph=*/true, /*create_graph=*/false, /*allow_unused=*/true)[0];
    return out.defined() ? out.detach() : torch::zeros_like(v);
  };
  const double inv_s2 = 1.0 / (sigma * sigma);
  // Score Jacobian J_s = (J_D − I)/σ²; its symmetric part M = (½(J_D + J_Dᵀ) − I)/σ².
  auto sym = [&](const torch::Tensor& v) { return ((jv(v) + jt(v)) * 0.5 - v) * inv_s2; };
  auto normal = [&](const torch::Tensor& v) {
    torch::Tensor w = (jv(v) - v) * inv_s2;
    return (jt(w) - w) * inv_s2;
  };
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto start = [&] { return at::randn(x.sizes(), gen, torch::kFloat64).to(x.device(), x.scalar_type()); };

  torch::NoGradGuard no_grad;  // the operators above call autograd::grad explicitly
  JacobianExtremes out;
  torch::Tensor lambda = power_iteration(sym, start(), iterations);  // largest |λ|, with sign
  torch::Tensor rho = lambda.abs();
  torch::Tensor shifted = power_iteration(
      [&](const torch::Tensor& v) { return sym(v) + per_row(rho, v).to(v.device()) * v; }, start(), iterations);
  out.one_sided = torch::where(lambda > 0, lambda, shifted.cpu() - rho.cpu()).cpu();
  out.spectral = power_iteration(normal, start(), iterations).clamp_min(0).sqrt().cpu();
  return out;
}

}  // namespace scoreflow::eval
