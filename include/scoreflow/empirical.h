#pragma once
/// builtin:empirical — the exact denoiser of a dataset's σ-smoothed empirical distribution
/// p_σ = (1/N) Σ_i N(x^(i), σ² I): D(x, σ) = Σ_i w_i x^(i), w = softmax_i(−‖x − x^(i)‖²/2σ²) over
/// the whole set (streamed log-sum-exp over two float64 matrix products, models/mixture_posterior.h).
/// It memorises its training data: sampling from it reproduces dataset items. Used as the
/// score-matching oracle (docs/design.md §6).
#include <memory>
#include <string>

#include "scoreflow/model.h"

namespace scoreflow {

class IsotropicMixture;

class EmpiricalModel : public Model {
 public:
  /// data: [N, ...shape] in the data range (kept as float64 on the CPU).
  EmpiricalModel(std::string name, std::string source, torch::Tensor data, ModelMetadata metadata);
  std::string name() const override { return name_; }
  std::string summary() const override;
  const ModelMetadata& metadata() const override { return meta_; }
  torch::Tensor denoise(const torch::Tensor& x, const std::vector<double>& sigma,
                        const torch::Tensor& labels) const override;
  /// Exact ∇ log p_σ(x) = (D(x, σ) − x)/σ², float64 [B, ...shape].
  torch::Tensor score(const torch::Tensor& x, const std::vector<double>& sigma) const;
  /// Exact log p_σ(x), [B] float64.
  torch::Tensor log_prob(const torch::Tensor& x, const std::vector<double>& sigma) const;
  /// The items, [N, d] float64 (a copy).
  torch::Tensor data() const;
  void to(torch::Device device) override { device_ = device; }
  torch::Device device() const override { return device_; }

 private:
  /// Streams over the data in blocks: (log (1/N) Σ_i σ^{-d} exp(−‖x − x_i‖²/2σ²) [B], D [B, d] if want_mean).
  std::pair<torch::Tensor, torch::Tensor> stream(const torch::Tensor& x, const std::vector<double>& sigma,
                                                 bool want_mean, torch::ScalarType mean_type = torch::kFloat64) const;
  std::string name_, source_;
  std::shared_ptr<const IsotropicMixture> mixture_;
  ModelMetadata meta_;
  torch::Device device_ = torch::kCPU;
};

/// "builtin:empirical:data=PATH[,limit=N,schedule=...]".
std::shared_ptr<EmpiricalModel> make_empirical(const std::string& spec);

}  // namespace scoreflow
