#pragma once
/// Built-in analytic models with exact denoisers: the test oracles, and the default model before
/// a trained one is at hand. Specs: "builtin:gaussian[:k=v,...]", "builtin:gmm", "builtin:ring8".
#include <memory>
#include <string>

#include "scoreflow/model.h"

namespace scoreflow {

class IsotropicMixture;

/// An isotropic-per-component Gaussian mixture Σ_k π_k N(μ_k, v_k I) (diagonal v for one
/// component), in any shape. D(x, σ) is exact: responsibilities from the σ-smoothed mixture times
/// the per-component posterior means μ_k + v_k/(v_k + σ²)(x − μ_k). With isotropic components a
/// call costs two float64 matrix products over [B, d]×[d, K] (models/mixture_posterior.h); a
/// per-element variance (builtin:gaussian with std_min ≠ std_max) takes the element-wise path.
class GaussianMixtureModel : public Model {
 public:
  /// means [K, d], variances [K, d] (per element), weights [K] (sum 1); float64.
  GaussianMixtureModel(std::string name, std::string summary, torch::Tensor means, torch::Tensor variances,
                       torch::Tensor weights, ModelMetadata metadata);
  std::string name() const override { return name_; }
  std::string summary() const override { return summary_; }
  const ModelMetadata& metadata() const override { return meta_; }
  torch::Tensor denoise(const torch::Tensor& x, const std::vector<double>& sigma,
                        const torch::Tensor& labels) const override;
  /// Exact ∇_x log p_σ(x) in σ-space (p_σ = data ⊛ N(0, σ²I)). [B, ...shape], float64.
  torch::Tensor score(const torch::Tensor& x, const std::vector<double>& sigma) const;
  /// Exact log p_σ(x) per sample, [B] float64.
  torch::Tensor log_prob(const torch::Tensor& x, const std::vector<double>& sigma) const;
  /// With `features=true` (gmm, ring8): the posterior responsibilities p(component k | x_σ) [B, K]
  /// (float32), the analytic stand-in for a network's bottleneck — which mode a sample is heading
  /// to — so that AMED's predictor can run in feature mode on these models.
  bool has_features() const override { return !meta_.features.empty(); }
  torch::Tensor features(const torch::Tensor& x, const std::vector<double>& sigma,
                         const torch::Tensor& labels) const override;
  const torch::Tensor& means() const { return means_; }
  const torch::Tensor& variances() const { return vars_; }
  const torch::Tensor& weights() const { return weights_; }
  void to(torch::Device device) override { device_ = device; }
  torch::Device device() const override { return device_; }

 private:
  struct Posterior {
    torch::Tensor log_norm, mean, resp;  // [B] (log p_σ(x) + (d/2) log 2π), [B, d], [B, K]; float64
  };
  /// The mean comes in mean_type where the isotropic path can write it directly (float32/float64).
  Posterior posterior(const torch::Tensor& x, const std::vector<double>& sigma, bool want_mean, bool want_resp,
                      torch::ScalarType mean_type = torch::kFloat64) const;
  std::string name_, summary_;
  torch::Tensor means_, vars_, weights_;
  std::shared_ptr<const IsotropicMixture> isotropic_;  // null when some component's variance varies by element
  ModelMetadata meta_;
  torch::Device device_ = torch::kCPU;
};

/// Builds "builtin:NAME[:k=v,...]" (NAME without the "builtin:" prefix is also accepted).
std::shared_ptr<GaussianMixtureModel> make_builtin(const std::string& spec);

}  // namespace scoreflow
