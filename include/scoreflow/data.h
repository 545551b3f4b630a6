#pragma once
/// Datasets for every command that takes --data: image folders (recursive, sorted), MNIST-style
/// idx / idx.gz files, .npy / .npz arrays. Images come out as float [N, C, H, W] in the model's
/// data range.
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

namespace scoreflow::io {

struct DatasetOptions {
  std::vector<int64_t> shape;  ///< wanted [C, H, W]; empty = as stored
  double lo = -1.0, hi = 1.0;  ///< data range to scale uint8 [0, 255] into
  bool resize = false;         ///< resize + centre-crop to `shape` instead of refusing a mismatch
  bool skip_bad = false;       ///< skip unreadable files (counted) instead of failing
  std::string key;             ///< npz key (default: "images", "arr_0", or the only key)
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  /// [C, H, W] of every item.
  virtual std::vector<int64_t> shape() const = 0;
  /// Items [begin, begin + count) as float32 [count, C, H, W] in [lo, hi].
  virtual torch::Tensor batch(int64_t begin, int64_t count) const = 0;
  /// Human-readable description ("idx /path (60000 images 1x28x28)").
  virtual std::string describe() const = 0;
  /// Number of files skipped with skip_bad.
  virtual int64_t skipped() const { return 0; }
};

/// Opens `path` by its kind (directory, *.idx / *-ubyte / *.gz, *.npy, *.npz). Throws Error naming
/// the file and the problem (mixed shapes, truncated idx, wrong dtype, shape mismatch).
std::unique_ptr<Dataset> open_dataset(const std::string& path, const DatasetOptions& options);

}  // namespace scoreflow::io
