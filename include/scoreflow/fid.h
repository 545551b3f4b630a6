#pragma once
/// The Fréchet-distance pipeline of `eval fid` as a library: feature networks on one device or
/// several (the job layer's splitter, docs/design.md §8), a reference from a statistics file or
/// from rows, the report of the shared eval::FdMetric (scoreflow/fd_metric.h: FD, KID, sliced
/// W2; compare's fd is the same class) on sample rows, and the shard files that
/// `scoreflow merge` combines. Sample rows come from io::load_sample_rows (scoreflow/sample_files.h)
/// or from a sampler (jobs::run_chunked, resumable through an io::ChunkStore).
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "scoreflow/fd_metric.h"
#include "scoreflow/features.h"
#include "scoreflow/metrics.h"

namespace scoreflow::jobs {

using eval::FeatureNetworks;
using eval::FidOptions;
using eval::FidReference;

/// eval::extract_features over the networks' devices, split by split_over_workers (device k takes
/// the k-th contiguous run of whole batches, as shard k/K would). The moments are merged in device
/// order, which equals one pass up to rounding (MomentAccumulator::merge); kept rows are joined in
/// row order on the CPU. The steady rate is all devices' steady rows over the slowest device's time.
eval::FeatureSet extract_features(const FeatureNetworks& fx, const torch::Tensor& x, double lo, double hi,
                                  int64_t batch, bool keep_rows, int64_t first_row = 0);

/// A stream of `metric` fed x [N, ...] split by split_over_workers over metric.workers() (worker
/// k takes the k-th contiguous run of whole `batch`-row blocks, as shard k/K would), the workers'
/// streams merged in worker order: one stream's result up to rounding.
std::unique_ptr<eval::MetricStream> stream_on_workers(const eval::SampleMetric& metric, const torch::Tensor& x,
                                                      int64_t batch);

/// A reference from a pytorch-fid/ADM statistics .npz (eval::load_feature_stats).
FidReference fid_reference_from_stats(const std::string& path);
/// A reference from rows [N, ...] in [lo, hi] (N >= 2); their features are kept when KID or
/// sliced W2 will need them.
FidReference fid_reference_from_rows(const FeatureNetworks& fx, const torch::Tensor& rows, double lo, double hi,
                                     const std::string& name, const FidOptions& options);

/// The metrics of one evaluation.
struct FidReport {
  std::string features;  ///< the feature network's path, or "none"
  std::string reference;
  int64_t feature_dim = 0, reference_count = 0, sample_count = 0;
  std::optional<double> fd;  ///< with samples
  std::optional<eval::KidResult> kid;
  eval::KidOptions kid_options;             ///< the subsets KID used
  std::optional<double> sliced_w2_squared;  ///< with "none" and a reference made from rows
  /// Feature-network adaptations and rank warnings (fewer rows than dimensions).
  std::vector<std::string> notes;
  /// Feature extraction of the samples after their first batch, rows per second (0: not measured).
  double feature_rows_per_second = 0;
  /// The statistics a --save-stats file holds: of the samples, or of the reference without samples.
  torch::Tensor mu, sigma;
  /// The report's fields as `eval fid --json` prints them: features, feature_dim, reference,
  /// reference_count, sample_count, notes, and fd, kid, sliced_w2_squared and
  /// feature_images_per_second when computed.
  nlohmann::json to_json() const;
};

/// The report of `fd` on `samples` [N, ...] (undefined: none, and the report only describes the
/// reference): its result (FD, KID and sliced W2 as its options and features ask), fed through
/// stream_on_workers, and what describes it. Throws Error for fewer than 2 samples, NaN/Inf
/// features (naming the row) or a feature dimension other than the reference's.
FidReport fid_report(const eval::FdMetric& fd, const torch::Tensor& samples);
/// The same with the FdMetric of `fx` (which must outlive the call), `ref` and `options` on
/// samples in [lo, hi].
FidReport fid_report(const FeatureNetworks& fx, const FidReference& ref, const torch::Tensor& samples, double lo,
                     double hi, const FidOptions& options);

/// Writes the feature-moment sums of one shard (count, shift, sum, outer and the shard record,
/// jobs::shard_record of kind "fid") to `path`, for merge_shards.
void write_fid_shard(const std::string& path, const eval::MomentAccumulator& moments, const nlohmann::json& record);

}  // namespace scoreflow::jobs
