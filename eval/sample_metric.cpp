// The per-cell metrics of a sampler sweep behind one interface (scoreflow/sample_metric.h).
#include "scoreflow/sample_metric.h"

#include <algorithm>
#include <cmath>

#include "scoreflow/builtin.h"
#include "scoreflow/error.h"
#include "scoreflow/features.h"
#include "scoreflow/metrics.h"
#include "scoreflow/score_matching.h"

namespace scoreflow::eval {
namespace {

/// Samples as float64 rows [N, D].
torch::Tensor rows_of(const torch::Tensor& samples) { return samples.to(torch::kFloat64).flatten(1); }

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
  double value(const torch::Tensor& samples) const override {
    const torch::Tensor x = rows_of(samples);
    if (ref_rows_.defined()) return std::sqrt(eval::sliced_w2_squared(x, ref_rows_));
    eval::MomentAccumulator acc;
    acc.add(x);
    return std::sqrt(std::max(0.0, eval::gaussian_w2_squared(acc.mean(), acc.covariance(), mu_, cov_)));
  }

 private:
  torch::Tensor mu_, cov_, ref_rows_;
  std::string label_;
};

/// Fréchet distance of the samples' features (images: through the decoder) to reference moments.
class FdMetric : public SampleMetric {
 public:
  FdMetric(const SampleMetricOptions& o, const std::shared_ptr<const Model>& model, const ImageDecoder& decoder)
      : decoder_(decoder), decode_batch_(o.decode_batch) {
    features_ = std::make_unique<FeatureExtractor>(o.features, model->device());
    if (!o.ref.empty() == !o.ref_data.empty())
      fail(Field{"metric"}, " fd needs exactly one of ", Field{"ref"}, " stats.npz or ", Field{"ref_data"}, " DATASET");
    if (!o.ref.empty()) {
      std::tie(mu_, cov_) = load_feature_stats(o.ref);
    } else {
      // The reference data are images, so a latent model's images' shape and range read them.
      const ModelMetadata image = decoder_.image_metadata(model->metadata());
      torch::Tensor rows = load_data_rows(o.ref_data, image);
      std::vector<int64_t> shape{rows.size(0)};
      shape.insert(shape.end(), image.shape.begin(), image.shape.end());
      const eval::MomentAccumulator acc =
          moments(rows.reshape(shape).to(torch::kFloat32), image.data_min, image.data_max);
      if (acc.count() < 2)
        fail(Field{"ref_data"}, " ", o.ref_data, " has ", acc.count(), " items; a covariance needs at least 2");
      mu_ = acc.mean();
      cov_ = acc.covariance();
    }
    label_ = std::string("FD (") + (o.features == "none" ? "raw samples" : o.features) + ")";
  }
  std::string name() const override { return "fd"; }
  std::string label() const override { return label_; }
  double value(const torch::Tensor& samples) const override {
    const eval::MomentAccumulator acc =
        moments(decoder_.images(samples, decode_batch_), decoder_.image_min(), decoder_.image_max());
    if (acc.dim() != mu_.size(0))
      fail(Field{"ref"}, " statistics have dimension ", mu_.size(0), " but the features have ", acc.dim());
    return eval::frechet_distance(acc.mean(), acc.covariance(), mu_, cov_);
  }

 private:
  /// Feature moments of x through eval fid's extraction, in one network call.
  eval::MomentAccumulator moments(const torch::Tensor& x, double lo, double hi) const {
    return extract_features(*features_, x, lo, hi, std::max<int64_t>(1, x.size(0)), false).moments;
  }

  ImageDecoder decoder_;
  int64_t decode_batch_;
  std::unique_ptr<FeatureExtractor> features_;
  torch::Tensor mu_, cov_;
  std::string label_;
};

/// RMS over samples of the distance to the same seed's converged reference sample.
class OdeErrorMetric : public SampleMetric {
 public:
  explicit OdeErrorMetric(const SampleMetricOptions& o)
      : label_("RMS distance to " + o.reference_sampler + " with " + std::to_string(o.reference_steps) + " steps") {}
  std::string name() const override { return "ode-error"; }
  std::string label() const override { return label_; }
  bool needs_reference_samples() const override { return true; }
  void set_reference_samples(const torch::Tensor& samples) override { reference_ = rows_of(samples); }
  double value(const torch::Tensor& samples) const override {
    if (!reference_.defined()) fail("metric ode-error: no reference samples were given");
    const torch::Tensor x = rows_of(samples);
    if (x.sizes() != reference_.sizes())
      fail("metric ode-error: samples [", x.size(0), ", ", x.size(1), "] but reference samples [", reference_.size(0),
           ", ", reference_.size(1), "]");
    return std::sqrt((x - reference_).pow(2).sum(1).mean().item<double>());
  }

 private:
  std::string label_;
  torch::Tensor reference_;
};

}  // namespace

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
  if (options.metric == "fd") return std::make_unique<FdMetric>(options, model, decoder);
  return std::make_unique<OdeErrorMetric>(options);
}

}  // namespace scoreflow::eval
