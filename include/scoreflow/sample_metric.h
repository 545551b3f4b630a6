#pragma once
/// One number for a set of samples, as `scoreflow compare` reports it per cell: a typed metric
/// interface with one implementation per metric, chosen by name once (make_sample_metric).
/// - "w2": the 2-Wasserstein distance of the samples to the model's distribution: exact Bures W2
///   of the sample moments against a single-Gaussian model (builtin:gaussian), else sliced W2
///   against reference data.
/// - "fd": the Fréchet distance of the samples' features (a feature network, or the raw samples)
///   to reference statistics or reference data.
/// - "ode-error": the RMS distance of each sample to the same seed's sample from a converged
///   reference run (reference_sampler with reference_steps steps), which the caller makes and hands
///   over (SampleMetric::set_reference_samples).
/// Failures throw Error naming the field ("metric", "ref", "ref_data") and the valid values.
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "scoreflow/latent.h"
#include "scoreflow/model.h"

namespace scoreflow::eval {

/// A metric and what it compares against, as plain settings.
struct SampleMetricOptions {
  std::string metric = "w2";               ///< one of sample_metric_names()
  std::string features = "none";           ///< fd: a TorchScript feature network, or "none" (the raw samples)
  std::string ref;                         ///< fd: reference statistics .npz (mu, sigma)
  std::string ref_data;                    ///< fd: reference images; w2: reference data (models other than a Gaussian)
  std::string reference_sampler = "heun";  ///< ode-error: the converged reference's sampler
  int reference_steps = 500;               ///< ode-error: its steps
  int64_t decode_batch = 16;               ///< fd on a latent model: samples per decoder call
};

class SampleMetric {
 public:
  virtual ~SampleMetric() = default;
  /// The metric's name ("w2", "fd", "ode-error").
  virtual std::string name() const = 0;
  /// What the value is, for a report's title ("sliced W2 vs data.npy").
  virtual std::string label() const = 0;
  /// True when value() needs set_reference_samples() first (ode-error).
  virtual bool needs_reference_samples() const { return false; }
  /// The converged reference run's samples [N, ...shape], in the seed order value() sees.
  virtual void set_reference_samples(const torch::Tensor& samples) { (void)samples; }
  /// The metric of samples [N, ...shape] (the model's sample space and data range).
  virtual double value(const torch::Tensor& samples) const = 0;
};

/// "fd", "w2", "ode-error".
const std::vector<std::string>& sample_metric_names();

/// Throws Error naming field "metric" and the valid names unless `name` is one of them.
void check_sample_metric_name(const std::string& name);

/// The metric `options.metric` of `model`'s samples; images metrics see them through `decoder`
/// (the identity for a pixel-space model). Loads the references now: throws Error naming the
/// field when one is missing, unreadable or of the wrong size.
std::unique_ptr<SampleMetric> make_sample_metric(const SampleMetricOptions& options, std::shared_ptr<const Model> model,
                                                 const ImageDecoder& decoder);

}  // namespace scoreflow::eval
