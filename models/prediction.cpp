#include "scoreflow/prediction.h"

namespace scoreflow {

torch::Tensor denoised_from_output(Prediction prediction, const torch::Tensor& x, const torch::Tensor& f,
                                   const torch::Tensor& alpha, const torch::Tensor& sigma) {
  switch (prediction) {
    case Prediction::Eps:  // x_t = α(x0 + σε) ⇒ D = x − σ ε̂
      // One fused kernel when σ is one number (the common case; launches matter at small batch).
      if (sigma.dim() == 0 && sigma.is_cpu()) return at::sub(x, f, sigma.item<double>());
      return x - sigma * f;
    case Prediction::X0:
      return f;
    case Prediction::V:  // v = α ε − s x0 with α² + s² = 1 ⇒ x0 = α x_t − s v, x_t = α x, s = ασ
      return alpha * alpha * x - alpha * sigma * f;
    case Prediction::Score:  // F = ∇_{x_t} log p = −ε/s ⇒ D = x − σ ε = x + σ s F = x + σ² α F
      return x + sigma * sigma * alpha * f;
    case Prediction::Flow:  // x_t = (1 − t) x0 + t ε, F = ε − x0 ⇒ x0 = x_t − t F with t = s = ασ
      return alpha * x - alpha * sigma * f;
  }
  return f;
}

}  // namespace scoreflow
