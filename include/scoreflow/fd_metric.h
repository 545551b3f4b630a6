#pragma once
/// The Fréchet-distance metric that `compare --metric fd` and `eval fid` share (a SampleMetric,
/// scoreflow/sample_metric.h): samples' features from a feature network with one copy per device
/// (or the raw samples, "none") against a reference's mu/sigma, with KID and sliced W2 when the
/// reference keeps its feature rows. Splitting a set over the devices is the job layer's
/// (jobs::stream_on_workers); a stream per device extracts through eval::extract_features.
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "scoreflow/features.h"
#include "scoreflow/latent.h"
#include "scoreflow/metrics.h"
#include "scoreflow/sample_metric.h"

namespace scoreflow::eval {

/// One copy of a feature network (or of "none") per device.
class FeatureNetworks {
 public:
  /// `devices` empty: one copy on the CPU.
  FeatureNetworks(const std::string& path, const std::vector<torch::Device>& devices);
  int64_t size() const { return static_cast<int64_t>(on_.size()); }
  const FeatureExtractor& operator[](int64_t k) const { return *on_.at(static_cast<size_t>(k)); }
  const FeatureExtractor& first() const { return *on_.front(); }
  /// "none": the features are the flattened samples.
  bool identity() const { return first().identity(); }
  const std::string& path() const { return first().path(); }
  /// Every copy's adaptation notes, each once, in order of first appearance.
  std::vector<std::string> notes() const;

 private:
  std::vector<std::unique_ptr<FeatureExtractor>> on_;
};

/// What an FD evaluation computes besides FD, and how.
struct FidOptions {
  int64_t batch = 64;         ///< rows per feature-network call (0: all rows of an add() in one call)
  bool kid = false;           ///< also KID (needs a reference made from rows)
  KidOptions kid_options;     ///< subset_size is capped at both sets' sizes
  int64_t projections = 256;  ///< sliced-W2 directions (with the identity features "none")
};

/// The reference side: mu [D] and sigma [D, D], and, when made from rows, their features.
struct FidReference {
  std::string name;  ///< the statistics file or data set, as messages and reports name it
  torch::Tensor mu, sigma;
  FeatureSet features;  ///< empty for a statistics file (or when its rows are not kept)
  int64_t count() const { return features.moments.count(); }
};

/// An FdMetric's stream: the features of the rows added so far.
class FeatureStream : public MetricStream {
 public:
  FeatureStream(const class FdMetric& metric, int64_t worker, int64_t first_row);
  void add(const torch::Tensor& samples) override;
  void merge(const MetricStream& other) override;
  int64_t count() const override { return features_.moments.count(); }
  const FeatureSet& features() const { return features_; }
  /// `stream` as an FdMetric's stream; throws Error for another metric's.
  static const FeatureStream& of(const MetricStream& stream);

 private:
  const FdMetric& metric_;
  int64_t worker_, next_row_;
  FeatureSet features_;
};

/// FD of the samples' features to a reference (Heusel et al. 2017), with KID (Bińkowski et al.
/// 2018) when options.kid and sliced W2 with "none" when the reference keeps its rows. result()
/// gives value = FD and extra kid_mean, kid_std, kid_subset_size (the capped size used) and
/// sliced_w2_squared; it throws Error for fewer than 2 samples or a feature dimension other than
/// the reference's. The streams' NaN/Inf checks name the row.
class FdMetric : public SampleMetric {
 public:
  /// Samples in [lo, hi] go to the networks as they are, or through `decoder` first (a latent
  /// model's samples, `decode_batch` per decoder call; then lo, hi are its images' range).
  FdMetric(std::shared_ptr<const FeatureNetworks> networks, FidReference reference, FidOptions options, double lo,
           double hi, std::optional<ImageDecoder> decoder = std::nullopt, int64_t decode_batch = 16);
  std::string name() const override { return "fd"; }
  std::string label() const override;
  int64_t workers() const override { return networks_->size(); }
  std::unique_ptr<MetricStream> start(int64_t worker = 0, int64_t first_row = 0) const override;
  MetricResult result(const MetricStream& stream) const override;

  const FeatureNetworks& networks() const { return *networks_; }
  const FidReference& reference() const { return reference_; }
  const FidOptions& options() const { return options_; }

 private:
  friend class FeatureStream;
  std::shared_ptr<const FeatureNetworks> networks_;
  FidReference reference_;
  FidOptions options_;
  double lo_, hi_;
  std::optional<ImageDecoder> decoder_;
  int64_t decode_batch_;
  bool keep_rows_;  // KID or sliced W2 will need the samples' feature rows
};

/// Throws Error unless `count` >= 2: an FD covariance of `what` ("samples", "reference items")
/// divides by N - 1.
void need_covariance(int64_t count, const std::string& what);

}  // namespace scoreflow::eval
