// The Fréchet-distance pipeline (scoreflow/fid.h): feature extraction split over devices,
// references, FD/KID/sliced W2, and fid shard files (docs/design.md §8).
#include "scoreflow/fid.h"

#include <algorithm>

#include "scoreflow/error.h"
#include "scoreflow/jobs.h"
#include "scoreflow/npy.h"

namespace scoreflow::jobs {
namespace {

void need_covariance(int64_t count, const std::string& what) {
  if (count < 2)
    fail("Frechet distance needs at least 2 ", what, " to estimate a covariance (it divides by N - 1); got ", count);
}

}  // namespace

FeatureNetworks::FeatureNetworks(const std::string& path, const std::vector<torch::Device>& devices) {
  if (devices.empty()) on_.push_back(std::make_unique<eval::FeatureExtractor>(path, torch::kCPU));
  for (const torch::Device& d : devices) on_.push_back(std::make_unique<eval::FeatureExtractor>(path, d));
}

std::vector<std::string> FeatureNetworks::notes() const {
  std::vector<std::string> all;
  for (const auto& e : on_)
    for (const std::string& n : e->notes())
      if (std::find(all.begin(), all.end(), n) == all.end()) all.push_back(n);
  return all;
}

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
  std::vector<torch::Tensor> kept;
  for (eval::FeatureSet& part : parts) {
    set.moments.merge(part.moments);
    if (part.rows.defined()) kept.push_back(part.rows.to(torch::kCPU));
    set.steady_rows += part.steady_rows;
    set.steady_seconds = std::max(set.steady_seconds, part.steady_seconds);
  }
  if (keep_rows && !kept.empty()) set.rows = torch::cat(kept);
  return set;
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

FidReport fid_report(const FeatureNetworks& fx, const FidReference& ref, const torch::Tensor& samples, double lo,
                     double hi, const FidOptions& options) {
  const bool sliced = fx.identity();
  eval::FeatureSet gen;
  if (samples.defined()) {
    gen = extract_features(fx, samples, lo, hi, options.batch, options.kid || sliced);
    need_covariance(gen.moments.count(), "samples");
  }
  FidReport report;
  report.features = fx.path();
  report.reference = ref.name;
  report.reference_count = ref.count();
  report.sample_count = gen.moments.count();
  const int64_t dim = report.sample_count ? gen.moments.dim() : ref.mu.size(0);
  report.feature_dim = dim;
  if (ref.mu.size(0) != dim)
    fail("reference statistics ", ref.name, " have dimension ", ref.mu.size(0), " but the ",
         sliced ? "samples" : "features of " + fx.path(), " have dimension ", dim);
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
  report.fd = eval::frechet_distance(report.mu, report.sigma, ref.mu, ref.sigma);
  const torch::Tensor& ref_rows = ref.features.rows;
  if (options.kid) {
    if (!ref_rows.defined()) fail("KID needs the reference features: make the reference from rows, not statistics");
    report.kid_options = options.kid_options;
    report.kid_options.subset_size = std::min({options.kid_options.subset_size, gen.rows.size(0), ref_rows.size(0)});
    report.kid = eval::kernel_inception_distance(gen.rows, ref_rows, report.kid_options);
  }
  if (sliced && ref_rows.defined()) {
    eval::SlicedW2Options s;
    s.projections = options.projections;
    report.sliced_w2_squared = eval::sliced_w2_squared(gen.rows, ref_rows, s);
  }
  return report;
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
