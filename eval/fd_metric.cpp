// The Fréchet-distance metric of compare and eval fid (scoreflow/fd_metric.h).
#include "scoreflow/fd_metric.h"

#include <algorithm>
#include <utility>

#include "scoreflow/error.h"

namespace scoreflow::eval {

void need_covariance(int64_t count, const std::string& what) {
  if (count < 2)
    fail("Frechet distance needs at least 2 ", what, " to estimate a covariance (it divides by N - 1); got ", count);
}

FeatureNetworks::FeatureNetworks(const std::string& path, const std::vector<torch::Device>& devices) {
  if (devices.empty()) on_.push_back(std::make_unique<FeatureExtractor>(path, torch::kCPU));
  for (const torch::Device& d : devices) on_.push_back(std::make_unique<FeatureExtractor>(path, d));
}

std::vector<std::string> FeatureNetworks::notes() const {
  std::vector<std::string> all;
  for (const auto& e : on_)
    for (const std::string& n : e->notes())
      if (std::find(all.begin(), all.end(), n) == all.end()) all.push_back(n);
  return all;
}

FeatureStream::FeatureStream(const FdMetric& metric, int64_t worker, int64_t first_row)
    : metric_(metric), worker_(worker), next_row_(first_row) {}

void FeatureStream::add(const torch::Tensor& samples) {
  const FdMetric& m = metric_;
  const torch::Tensor x = m.decoder_ ? m.decoder_->images(samples, m.decode_batch_) : samples;
  const int64_t batch = m.options_.batch > 0 ? m.options_.batch : std::max<int64_t>(1, x.size(0));
  FeatureSet part = extract_features((*m.networks_)[worker_], x, m.lo_, m.hi_, batch, m.keep_rows_, next_row_);
  next_row_ += x.size(0);
  if (count() == 0) {
    features_ = std::move(part);
    return;
  }
  const double seconds = features_.steady_seconds + part.steady_seconds;  // one after the other
  features_.merge(part);
  features_.steady_seconds = seconds;
}

void FeatureStream::merge(const MetricStream& other) { features_.merge(of(other).features_); }

const FeatureStream& FeatureStream::of(const MetricStream& stream) {
  const auto* s = dynamic_cast<const FeatureStream*>(&stream);
  if (!s) fail("internal: metric fd was handed another metric's stream");
  return *s;
}

FdMetric::FdMetric(std::shared_ptr<const FeatureNetworks> networks, FidReference reference, FidOptions options,
                   double lo, double hi, std::optional<ImageDecoder> decoder, int64_t decode_batch)
    : networks_(std::move(networks)),
      reference_(std::move(reference)),
      options_(options),
      lo_(lo),
      hi_(hi),
      decoder_(std::move(decoder)),
      decode_batch_(decode_batch),
      keep_rows_(options.kid || (networks_->identity() && reference_.features.rows.defined())) {}

std::string FdMetric::label() const {
  return std::string("FD (") + (networks_->identity() ? "raw samples" : networks_->path()) + ")";
}

std::unique_ptr<MetricStream> FdMetric::start(int64_t worker, int64_t first_row) const {
  return std::make_unique<FeatureStream>(*this, worker, first_row);
}

MetricResult FdMetric::result(const MetricStream& stream) const {
  const FeatureSet& gen = FeatureStream::of(stream).features();
  const FidReference& ref = reference_;
  need_covariance(gen.moments.count(), "samples");
  const int64_t dim = gen.moments.dim();
  if (ref.mu.size(0) != dim)
    fail("reference statistics ", ref.name, " have dimension ", ref.mu.size(0), " but the ",
         networks_->identity() ? "samples" : "features of " + networks_->path(), " have dimension ", dim);
  MetricResult r;
  r.value = frechet_distance(gen.moments.mean(), gen.moments.covariance(), ref.mu, ref.sigma);
  const torch::Tensor& ref_rows = ref.features.rows;
  if (options_.kid) {
    if (!ref_rows.defined()) fail("KID needs the reference features: make the reference from rows, not statistics");
    KidOptions kid = options_.kid_options;
    kid.subset_size = std::min({kid.subset_size, gen.rows.size(0), ref_rows.size(0)});
    const KidResult k = kernel_inception_distance(gen.rows, ref_rows, kid);
    r.extra["kid_mean"] = k.mean;
    r.extra["kid_std"] = k.std;
    r.extra["kid_subset_size"] = static_cast<double>(kid.subset_size);
  }
  if (networks_->identity() && ref_rows.defined()) {
    SlicedW2Options s;
    s.projections = options_.projections;
    r.extra["sliced_w2_squared"] = sliced_w2_squared(gen.rows, ref_rows, s);
  }
  return r;
}

}  // namespace scoreflow::eval
