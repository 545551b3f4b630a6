#pragma once
/// Shared machinery of the dataset readers (not public API): every source ends up as one stored
/// tensor [N, C0, H0, W0] (uint8 in [0, 255], or float32 already in the data range) that
/// TensorDataset serves in the wanted [C, H, W] and range, converting lazily per batch.
#include <cstdint>
#include <string>
#include <vector>

#include "scoreflow/data.h"

namespace scoreflow::io::detail {

/// "3x32x32" for messages.
std::string shape_text(const std::vector<int64_t>& chw);

/// Checks lo < hi and that `options.shape` is empty or three positive numbers.
void check_options(const DatasetOptions& options, const std::string& path);

/// The [C, H, W] served for items stored as `stored`: options.shape if given, else `stored`.
/// Refuses channel conversions other than 1->3, 3->1, 4->3, 4->1 and any H x W difference that
/// options.prep's padding does not make up and no resize (options.resize, prep.resize) allows,
/// naming `path`, both shapes and the field `data_prep`.
std::vector<int64_t> target_shape(const std::vector<int64_t>& stored, const DatasetOptions& options,
                                  const std::string& path);

/// True when items of H x W `stored` are padded (options.prep) to the wanted shape.
bool pads(const std::vector<int64_t>& stored, const DatasetOptions& options);
/// options.resize or options.prep.resize.
bool resizes(const DatasetOptions& options);
/// The H x W mismatch error of target_shape (also for one image of a folder).
[[noreturn]] void fail_mismatch(const std::string& what, const std::vector<int64_t>& stored,
                                const DatasetOptions& options);

/// Resizes [H, W, C] to [th, tw, C] after cropping the largest centred region of the target's
/// aspect ratio (so nothing is stretched). uint8 or float32, contiguous.
torch::Tensor resize_center_crop(const torch::Tensor& hwc, int64_t th, int64_t tw);

/// A dataset over an in-memory stored tensor; see the file comment.
class TensorDataset : public Dataset {
 public:
  /// `kind` and `path` start describe(); `note` (e.g. "uint8 NHWC") is appended to it.
  TensorDataset(torch::Tensor stored_nchw, std::string kind, std::string path, std::string note,
                const DatasetOptions& options, int64_t skipped = 0);
  int64_t size() const override { return stored_.size(0); }
  std::vector<int64_t> shape() const override { return target_; }
  torch::Tensor batch(int64_t begin, int64_t count) const override;
  std::string describe() const override;
  int64_t skipped() const override { return skipped_; }

 private:
  torch::Tensor stored_;
  std::string kind_, path_, note_;
  DatasetOptions options_;
  std::vector<int64_t> target_;
  int64_t skipped_;
};

/// Image folder: see open_dataset.
std::unique_ptr<Dataset> open_image_folder(const std::string& dir, const DatasetOptions& options);
/// MNIST-style idx (optionally gzip-compressed) image file.
std::unique_ptr<Dataset> open_idx(const std::string& path, const DatasetOptions& options);
/// .npy / .npz arrays; see the layout rule on open_dataset (data.h).
std::unique_ptr<Dataset> open_npy(const std::string& path, const DatasetOptions& options);
std::unique_ptr<Dataset> open_npz(const std::string& path, const DatasetOptions& options);

}  // namespace scoreflow::io::detail
