#pragma once
// The exact posterior of an isotropic Gaussian mixture Σ_k π_k N(μ_k, v_k I) observed through
// x = x0 + σ·n, as two matrix products per call: ‖x − μ_k‖² = ‖x‖² − 2 x·μ_k + ‖μ_k‖² (float64,
// coordinates centred on the mean of the μ_k to limit cancellation) and the posterior mean
// Σ_k r_k (σ²/(v_k+σ²) μ_k + v_k/(v_k+σ²) x) = (r ⊙ σ²/(v+σ²)) · M + (Σ_k r_k v_k/(v_k+σ²)) x.
// Streams over components in blocks with a running log-sum-exp, so no [B, K, d] temporary exists.
// Either the whole batch at once with the products through LibTorch (where it has MKL), or
// at::parallel_for over sample blocks with a register-tiled kernel. Serves builtin:gmm/ring8/gaussian
// (isotropic components) and builtin:empirical (v_k = 0, π_k = 1/N). Only models/ includes this header.
#include <torch/torch.h>

#include <vector>

namespace scoreflow {

class IsotropicMixture {
 public:
  /// means [K, d], variances [K] (≥ 0), log_weights [K]; any floating type, kept as float64.
  IsotropicMixture(const torch::Tensor& means, const torch::Tensor& variances, const torch::Tensor& log_weights);
  IsotropicMixture() = default;

  struct Result {
    torch::Tensor log_norm;  ///< [B]: log Σ_k π_k (v_k+σ²)^{-d/2} exp(−‖x−μ_k‖²/2(v_k+σ²)) (no 2π factor)
    torch::Tensor mean;      ///< [B, d] E[x0 | x] (only if asked)
    torch::Tensor resp;      ///< [B, K] p(k | x) (only if asked)
  };
  /// x [B, d] (float32 or float64 read as is, else converted); sigma2 has 1 or B entries. Results on
  /// the CPU in float64, the mean in mean_type (float32 or float64; the arithmetic is float64).
  Result posterior(const torch::Tensor& x, const std::vector<double>& sigma2, bool want_mean, bool want_resp,
                   torch::ScalarType mean_type = torch::kFloat64) const;

  int64_t components() const { return k_; }
  int64_t dims() const { return d_; }
  /// The means as given, [K, d] float64 (rebuilt from the centred, padded copy).
  torch::Tensor means() const;

 private:
  template <typename In, typename Out>
  void run(const torch::Tensor& x, const std::vector<double>& sigma2, Result& out) const;
  void run_torch(const torch::Tensor& x, const std::vector<double>& sigma2, Result& out) const;
  int64_t k_ = 0, d_ = 0, kpad_ = 0, dpad_ = 0;
  torch::Tensor centre_;                          // [d] mean of the μ_k
  std::vector<double> means_;                     // [kpad, dpad] centred μ_k, zero padded
  std::vector<double> norm2_, var_, log_weight_;  // [kpad]; padding has log weight −inf
  bool uniform_var_ = true;
  bool torch_mm_ = false;  // run_torch: whole-batch products through LibTorch (products_through_torch)
};

}  // namespace scoreflow
