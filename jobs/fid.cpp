// The Fréchet-distance pipeline (scoreflow/fid.h): feature extraction and metric streams split
// over devices, references, the FdMetric's report, and fid shard files (docs/design.md §8).
#include "scoreflow/fid.h"

#include "scoreflow/error.h"
#include "scoreflow/fd_metric.h"
#include "scoreflow/jobs.h"
#include "scoreflow/npy.h"

namespace scoreflow::jobs {

using eval::need_covariance;

eval::FeatureSet extract_features(const FeatureNetworks& fx, const torch::Tensor& x, double lo, double hi,
                                  int64_t batch, bool keep_rows, int64_t first_row) {
  const int64_t k_devices = fx.size();
  if (k_devices == 1 || !x.defined()) return eval::extract_features(fx.first(), x, lo, hi, batch, keep_rows, first_row);
  std::vector<eval::FeatureSet> parts(static_cast<size_t>(k_devices));
  split_over_workers(x.size(0), batch, k_devices, [&](int64_t k, int64_t begin, int64_t end) {
    parts[k] =
        eval::extract_features(fx[k], x.narrow(0, begin, end - begin), lo, hi, batch, keep_rows, first_row + begin);
  });
  eval::FeatureSet set;
  for (const eval::FeatureSet& part : parts) set.merge(part);
  return set;
}

std::unique_ptr<eval::MetricStream> stream_on_workers(const eval::SampleMetric& metric, const torch::Tensor& x,
                                                      int64_t batch) {
  const int64_t workers = metric.workers();
  if (workers == 1) {
    std::unique_ptr<eval::MetricStream> one = metric.start(0, 0);
    one->add(x);
    return one;
  }
  std::vector<std::unique_ptr<eval::MetricStream>> parts(static_cast<size_t>(workers));
  split_over_workers(x.size(0), batch, workers, [&](int64_t k, int64_t begin, int64_t end) {
    parts[k] = metric.start(k, begin);
    parts[k]->add(x.narrow(0, begin, end - begin));
  });
  std::unique_ptr<eval::MetricStream> all = metric.start(0, 0);
  for (const auto& part : parts)
    if (part) all->merge(*part);
  return all;
}

FidReference fid_reference_from_stats(const std::string& path) {
  FidReference ref;
  ref.name = path;
  std::tie(ref.mu, ref.sigma) = eval::load_feature_stats(path);
  return ref;
}

FidReference fid_reference_from_rows(const FeatureNetworks& fx, const torch::Tensor& rows, double lo, double hi,
                                     const std::string& name, const FidOptions& options) {
  FidReference ref;
  ref.name = name;
  ref.features = extract_features(fx, rows, lo, hi, options.batch, options.kid || fx.identity());
  need_covariance(ref.count(), "reference items");
  ref.mu = ref.features.moments.mean();
  ref.sigma = ref.features.moments.covariance();
  return ref;
}

FidReport fid_report(const eval::FdMetric& fd, const torch::Tensor& samples) {
  const FeatureNetworks& fx = fd.networks();
  const FidReference& ref = fd.reference();
  eval::FeatureSet gen;
  eval::MetricResult result;
  if (samples.defined()) {
    const std::unique_ptr<eval::MetricStream> stream = stream_on_workers(fd, samples, fd.options().batch);
    result = fd.result(*stream);  // checks the count and the dimension first
    gen = eval::FeatureStream::of(*stream).features();
  }
  FidReport report;
  report.features = fx.path();
  report.reference = ref.name;
  report.reference_count = ref.count();
  report.sample_count = gen.moments.count();
  const int64_t dim = report.sample_count ? gen.moments.dim() : ref.mu.size(0);
  report.feature_dim = dim;
  report.notes = fx.notes();
  auto rank_note = [&](int64_t n, const std::string& what) {
    if (n <= dim)
      report.notes.push_back(what + ": " + std::to_string(n) + " rows in " + std::to_string(dim) +
                             " dimensions give a singular covariance; use more than " + std::to_string(dim) +
                             " for a stable distance");
  };
  if (report.reference_count) rank_note(report.reference_count, "reference");
  if (report.sample_count) rank_note(report.sample_count, "samples");
  if (gen.steady_rows > 0 && gen.steady_seconds > 0)
    report.feature_rows_per_second = gen.steady_rows / gen.steady_seconds;
  if (!report.sample_count) {
    report.mu = ref.mu;
    report.sigma = ref.sigma;
    return report;
  }
  report.mu = gen.moments.mean();
  report.sigma = gen.moments.covariance();
  report.fd = result.value;
  if (result.extra.count("kid_mean")) {
    report.kid = eval::KidResult{result.extra.at("kid_mean"), result.extra.at("kid_std")};
    report.kid_options = fd.options().kid_options;
    report.kid_options.subset_size = static_cast<int64_t>(result.extra.at("kid_subset_size"));
  }
  if (result.extra.count("sliced_w2_squared")) report.sliced_w2_squared = result.extra.at("sliced_w2_squared");
  return report;
}

FidReport fid_report(const FeatureNetworks& fx, const FidReference& ref, const torch::Tensor& samples, double lo,
                     double hi, const FidOptions& options) {
  // Borrows fx for this call (the aliasing constructor owns nothing).
  const std::shared_ptr<const FeatureNetworks> borrowed(std::shared_ptr<void>(), &fx);
  return fid_report(eval::FdMetric(borrowed, ref, options, lo, hi), samples);
}

nlohmann::json FidReport::to_json() const {
  nlohmann::json doc = {{"features", features},         {"feature_dim", feature_dim},
                        {"reference", reference},       {"reference_count", reference_count},
                        {"sample_count", sample_count}, {"notes", notes}};
  if (feature_rows_per_second > 0) doc["feature_images_per_second"] = feature_rows_per_second;
  if (fd) doc["fd"] = *fd;
  if (kid)
    doc["kid"] = {{"mean", kid->mean},
                  {"std", kid->std},
                  {"subsets", kid_options.subsets},
                  {"subset_size", kid_options.subset_size}};
  if (sliced_w2_squared) doc["sliced_w2_squared"] = *sliced_w2_squared;
  return doc;
}

void write_fid_shard(const std::string& path, const eval::MomentAccumulator& moments, const nlohmann::json& record) {
  const bool any = moments.count() > 0;
  auto or_empty = [&](const torch::Tensor& t) { return any ? t : torch::zeros({0}, torch::kFloat64); };
  io::write_npz(path, {{"count", io::from_tensor(torch::tensor({moments.count()}, torch::kLong))},
                       {"shift", io::from_tensor(or_empty(moments.shift()))},
                       {"sum", io::from_tensor(or_empty(moments.sum()))},
                       {"outer", io::from_tensor(or_empty(moments.outer()))},
                       {kShardKey, record_array(record)}});
}

}  // namespace scoreflow::jobs
