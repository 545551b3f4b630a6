#pragma once
/// Feature networks for Fréchet distance / KID, and pytorch-fid/ADM-style statistics files.
/// Any TorchScript module with forward(x [B, C, H, W]) -> [B, D] works; its optional extra file
/// `scoreflow.json` may give {"input_shape": [C, H, W], "data_range": [lo, hi]}.
#include <c10/core/Device.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "scoreflow/metrics.h"

namespace scoreflow::eval {

class FeatureExtractor {
 public:
  /// `path`: a TorchScript feature network, or "none" (features = the flattened samples, for
  /// low-dimensional data). The network runs on `device` (inputs are moved there; a GPU keeps
  /// feature extraction at the network's own rate, docs/performance.md).
  explicit FeatureExtractor(const std::string& path, torch::Device device = torch::kCPU);
  ~FeatureExtractor();
  FeatureExtractor(const FeatureExtractor&) = delete;
  FeatureExtractor& operator=(const FeatureExtractor&) = delete;

  /// x: [B, ...shape] float with values in [lo, hi]. Returns [B, D] float64 on the extractor's
  /// device (the flattened samples on the CPU for "none"). Images are
  /// adapted to the network's input_shape: 1 → 3 channels by replication, 3 → 1 by ITU-R BT.601
  /// luminance, bilinear resize (torch interpolate, align_corners=false, no antialias) when H×W
  /// differ, and [lo, hi] mapped linearly onto the network's data_range. Throws Error naming the
  /// network and the input shape it rejected, a non-[B, D] output, or NaN/Inf features (naming the
  /// row, offset by `first_row`).
  torch::Tensor operator()(const torch::Tensor& x, double lo, double hi, int64_t first_row = 0) const;
  /// The same features without the NaN/Inf check, so without waiting for the device: for callers
  /// that check many batches at once and call operator() on a failing one for its message.
  torch::Tensor extract(const torch::Tensor& x, double lo, double hi) const;

  bool identity() const { return path_ == "none"; }
  const std::string& path() const { return path_; }
  /// The adaptations applied so far ("resized 8x8 -> 16x16 (bilinear)", ...), each once.
  const std::vector<std::string>& notes() const { return notes_; }
  /// The declared input_shape ([] when the network has no metadata).
  const std::vector<int64_t>& input_shape() const { return input_shape_; }
  torch::Device device() const { return device_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  torch::Device device_;
  std::vector<int64_t> input_shape_;
  double net_lo_ = -1, net_hi_ = 1;
  bool has_range_ = false;
  mutable std::vector<std::string> notes_;
};

/// The features of a set of rows: their moment sums, the rows themselves when kept (float64,
/// for KID and sliced W2), and the rate of extraction after the first batch (which also warms the
/// network up).
struct FeatureSet {
  eval::MomentAccumulator moments;
  torch::Tensor rows;  ///< [N, D] float64 when kept, else undefined
  int64_t steady_rows = 0;
  double steady_seconds = 0;
  /// Appends the features of later rows extracted beside these (another device): moments merged,
  /// kept rows joined on the CPU, steady rows summed over the slower time.
  void merge(const FeatureSet& other);
};

/// Features of x's rows [N, ...] (values in [lo, hi]), `batch` rows at a time. The rows stream to
/// the network's device, the copy of batch b+1 overlapping the work on b (io::RowPrefetcher), and
/// each batch's NaN/Inf check stays on the device as one flag: the host waits for the device only
/// after the first batch (to start the steady-rate clock) and once at the end, when the flags are
/// read. A failing batch is run again through the checking operator(), whose Error names the row
/// (offset by `first_row`). `keep_rows` keeps the features (on the CPU or the device).
FeatureSet extract_features(const FeatureExtractor& fx, const torch::Tensor& x, double lo, double hi, int64_t batch,
                            bool keep_rows, int64_t first_row = 0);

/// Writes `mu` [D] and `sigma` [D, D] as float64 arrays in an uncompressed .npz (the layout
/// pytorch-fid's --save-stats and ADM's reference batches use), atomically.
void save_feature_stats(const std::string& path, const torch::Tensor& mu, const torch::Tensor& sigma);
/// Reads `mu` and `sigma` from a .npz; throws Error for missing keys, non-[D]/[D, D] shapes,
/// mismatched D, or non-finite values.
std::pair<torch::Tensor, torch::Tensor> load_feature_stats(const std::string& path);

}  // namespace scoreflow::eval
