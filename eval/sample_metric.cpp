// The per-cell metrics of a sampler sweep behind one interface (scoreflow/sample_metric.h).
#include "scoreflow/sample_metric.h"

#include <algorithm>
#include <cmath>

#include "scoreflow/builtin.h"
#include "scoreflow/error.h"
#include "scoreflow/fd_metric.h"
#include "scoreflow/features.h"
#include "scoreflow/metrics.h"
#include "scoreflow/score_matching.h"

namespace scoreflow::eval {
namespace {

/// Samples as float64 rows [N, D].
torch::Tensor rows_of(const torch::Tensor& samples) { return samples.to(torch::kFloat64).flatten(1); }

/// The samples added so far, joined in result(): for metrics of the whole set at once.
class SampleRows : public MetricStream {
 public:
  void add(const torch::Tensor& samples) override {
    parts_.push_back(samples);
    count_ += samples.size(0);
  }
  void merge(const MetricStream& other) override {
    const SampleRows& o = of(other);
    parts_.insert(parts_.end(), o.parts_.begin(), o.parts_.end());
    count_ += o.count_;
  }
  int64_t count() const override { return count_; }
  /// The rows as float64 [N, D].
  torch::Tensor rows() const {
    if (parts_.empty()) fail("metric: no samples were added");
    return rows_of(parts_.size() == 1 ? parts_.front() : torch::cat(parts_));
  }
  static const SampleRows& of(const MetricStream& stream) {
    const auto* s = dynamic_cast<const SampleRows*>(&stream);
    if (!s) fail("internal: a metric was handed another metric's stream");
    return *s;
  }

 private:
  std::vector<torch::Tensor> parts_;
  int64_t count_ = 0;
};

/// W2 against the model's own Gaussian (exact, from the sample moments), or sliced W2 against data.
class W2Metric : public SampleMetric {
 public:
  W2Metric(const SampleMetricOptions& o, const std::shared_ptr<const Model>& model) {
    auto gauss = std::dynamic_pointer_cast<const GaussianMixtureModel>(model);
    if (gauss && gauss->weights().numel() == 1) {
      mu_ = gauss->means()[0];
      cov_ = torch::diag(gauss->variances()[0]);
      label_ = "W2 (Bures, sample moments vs the model's Gaussian)";
    } else {
      if (o.ref_data.empty())
        fail(Field{"metric"}, " w2 on a model other than builtin:gaussian needs ", Field{"ref_data"},
             " (sliced W2 against the data)");
      ref_rows_ = load_data_rows(o.ref_data, model);  // a latent model's encoder applies
      label_ = "sliced W2 vs " + o.ref_data;
    }
  }
  std::string name() const override { return "w2"; }
  std::string label() const override { return label_; }
  std::unique_ptr<MetricStream> start(int64_t, int64_t) const override { return std::make_unique<SampleRows>(); }
  MetricResult result(const MetricStream& stream) const override {
    const torch::Tensor x = SampleRows::of(stream).rows();
    if (ref_rows_.defined()) return {std::sqrt(eval::sliced_w2_squared(x, ref_rows_)), {}};
    eval::MomentAccumulator acc;
    acc.add(x);
    return {std::sqrt(std::max(0.0, eval::gaussian_w2_squared(acc.mean(), acc.covariance(), mu_, cov_))), {}};
  }

 private:
  torch::Tensor mu_, cov_, ref_rows_;
  std::string label_;
};

/// compare's fd: the shared FdMetric on the model's device, its samples through the decoder and
/// every add() in one network call, against statistics or reference images (FD only).
std::unique_ptr<SampleMetric> compare_fd_metric(const SampleMetricOptions& o, const std::shared_ptr<const Model>& model,
                                                const ImageDecoder& decoder) {
  auto networks = std::make_shared<const FeatureNetworks>(o.features, std::vector<torch::Device>{model->device()});
  if (!o.ref.empty() == !o.ref_data.empty())
    fail(Field{"metric"}, " fd needs exactly one of ", Field{"ref"}, " stats.npz or ", Field{"ref_data"}, " DATASET");
  FidReference ref;
  ref.name = !o.ref.empty() ? o.ref : o.ref_data;
  if (!o.ref.empty()) {
    std::tie(ref.mu, ref.sigma) = load_feature_stats(o.ref);
  } else {
    // The reference data are images, so a latent model's images' shape and range read them.
    const ModelMetadata image = decoder.image_metadata(model->metadata());
    torch::Tensor rows = load_data_rows(o.ref_data, image);
    std::vector<int64_t> shape{rows.size(0)};
    shape.insert(shape.end(), image.shape.begin(), image.shape.end());
    const torch::Tensor x = rows.reshape(shape).to(torch::kFloat32);
    const MomentAccumulator acc =
        extract_features(networks->first(), x, image.data_min, image.data_max, std::max<int64_t>(1, x.size(0)), false)
            .moments;
    if (acc.count() < 2)
      fail(Field{"ref_data"}, " ", o.ref_data, " has ", acc.count(), " items; a covariance needs at least 2");
    ref.mu = acc.mean();
    ref.sigma = acc.covariance();
  }
  FidOptions options;
  options.batch = 0;  // one network call per cell, as before streaming
  return std::make_unique<FdMetric>(networks, std::move(ref), options, decoder.image_min(), decoder.image_max(),
                                    decoder, o.decode_batch);
}

/// RMS over samples of the distance to the same seed's converged reference sample.
class OdeErrorMetric : public SampleMetric {
 public:
  explicit OdeErrorMetric(const SampleMetricOptions& o)
      : label_("RMS distance to " + o.reference_sampler + " with " + std::to_string(o.reference_steps) + " steps") {}
  std::string name() const override { return "ode-error"; }
  std::string label() const override { return label_; }
  bool needs_reference_samples() const override { return true; }
  void set_reference_samples(const torch::Tensor& samples) override { reference_ = rows_of(samples); }
  std::unique_ptr<MetricStream> start(int64_t, int64_t) const override { return std::make_unique<SampleRows>(); }
  MetricResult result(const MetricStream& stream) const override {
    if (!reference_.defined()) fail("metric ode-error: no reference samples were given");
    const torch::Tensor x = SampleRows::of(stream).rows();
    if (x.sizes() != reference_.sizes())
      fail("metric ode-error: samples [", x.size(0), ", ", x.size(1), "] but reference samples [", reference_.size(0),
           ", ", reference_.size(1), "]");
    return {std::sqrt((x - reference_).pow(2).sum(1).mean().item<double>()), {}};
  }

 private:
  std::string label_;
  torch::Tensor reference_;
};

}  // namespace

double SampleMetric::value(const torch::Tensor& samples) const {
  std::unique_ptr<MetricStream> stream = start();
  stream->add(samples);
  return result(*stream).value;
}

const std::vector<std::string>& sample_metric_names() {
  static const std::vector<std::string> names = {"fd", "w2", "ode-error"};
  return names;
}

void check_sample_metric_name(const std::string& name) {
  const auto& names = sample_metric_names();
  if (std::find(names.begin(), names.end(), name) == names.end())
    fail(Field{"metric"}, " '", name, "' is unknown; valid: ", join(names));
}

std::unique_ptr<SampleMetric> make_sample_metric(const SampleMetricOptions& options, std::shared_ptr<const Model> model,
                                                 const ImageDecoder& decoder) {
  check_sample_metric_name(options.metric);
  if (options.metric == "w2") return std::make_unique<W2Metric>(options, model);
  if (options.metric == "fd") return compare_fd_metric(options, model, decoder);
  return std::make_unique<OdeErrorMetric>(options);
}

}  // namespace scoreflow::eval
