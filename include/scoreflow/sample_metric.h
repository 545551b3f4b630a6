#pragma once
/// The typed metric interface that `scoreflow compare` (one number per cell) and `eval fid` (FD
/// with KID and sliced W2, streamed over devices; scoreflow/fd_metric.h) share: one
/// implementation per metric, chosen by name once (make_sample_metric). A metric is fed samples
/// batch by batch through a MetricStream (one per device or thread, merged in row order) and
/// reports a MetricResult, its headline value and the named values it computes besides;
/// value(samples) is the one-stream shorthand.
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
#include <map>
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

/// A metric's headline value and the named values it computes besides it.
struct MetricResult {
  double value = 0;
  std::map<std::string, double> extra;  ///< e.g. fd: kid_mean, kid_std, kid_subset_size, sliced_w2_squared
};

/// What a metric has seen of one set of samples. Streams of one metric fed side by side (one per
/// device or thread) are merged in row order; the result equals one stream fed every row.
class MetricStream {
 public:
  virtual ~MetricStream() = default;
  /// Adds samples [B, ...shape], the rows after those added so far.
  virtual void add(const torch::Tensor& samples) = 0;
  /// Appends the rows of `other`, a stream of the same metric that ran beside this one.
  virtual void merge(const MetricStream& other) = 0;
  /// Rows added so far.
  virtual int64_t count() const = 0;
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
  /// How many streams can run side by side (fd: one per feature-network device).
  virtual int64_t workers() const { return 1; }
  /// An empty stream on worker `worker` < workers(), whose first row is row `first_row` of the
  /// whole set (messages name rows by it).
  virtual std::unique_ptr<MetricStream> start(int64_t worker = 0, int64_t first_row = 0) const = 0;
  /// The metric of the samples `stream` holds. Throws Error when they cannot give it.
  virtual MetricResult result(const MetricStream& stream) const = 0;
  /// The headline value of samples [N, ...shape] (the model's sample space and data range), all
  /// added to one stream.
  double value(const torch::Tensor& samples) const;
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
