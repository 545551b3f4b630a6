#pragma once
/// Datasets for every command that takes --data: image folders (recursive, sorted), MNIST-style
/// idx / idx.gz files, .npy / .npz arrays. Images come out as float [N, C, H, W] in the model's
/// data range.
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

namespace scoreflow::io {

/// How a model's training images were made from dataset items (the metadata field `data_prep`):
/// `{"pad": 2, "pad_value": -1}` adds pixels of a constant (in the data range) around each item,
/// `{"resize": "center_crop"}` crops the largest centred region of the model's aspect ratio and
/// resizes it. Applied only to items whose H x W differ from the wanted shape, so that data already
/// prepared (a model's own samples) is used as it is.
struct DataPrep {
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  double pad_value = 0;
  bool resize = false;
  bool padded() const { return pad_top || pad_bottom || pad_left || pad_right; }
  bool empty() const { return !padded() && !resize; }
  /// The field as JSON text, e.g. {"pad": 2, "pad_value": -1}; "" when empty.
  std::string describe() const;
};

struct DatasetOptions {
  std::vector<int64_t> shape;  ///< wanted [C, H, W]; empty = as stored
  double lo = -1.0, hi = 1.0;  ///< data range to scale uint8 [0, 255] into
  bool resize = false;         ///< resize + centre-crop to `shape` instead of refusing a mismatch
  DataPrep prep;               ///< the model's data preparation (see DataPrep)
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
///  - Image folder: *.png/*.jpg/*.jpeg/*.bmp below `path`, recursively, sorted by path, dot files
///    ignored; decoded once at open. H x W must agree (error names the first file that differs)
///    unless `resize`.
///  - idx / idx.gz: unsigned-byte [N, H, W] (MNIST, Fashion-MNIST), C = 1; the header must
///    describe the file's length exactly.
///  - .npy / .npz: uint8 is scaled from [0, 255] and is NHWC when the last axis is 1/3/4 (ADM/EDM
///    archives), else NCHW when axis 1 is; float16/32/64 is taken as already in [lo, hi] and is
///    NCHW when axis 1 is 1/3/4 (scoreflow's `samples`), else NHWC when the last axis is;
///    [N, H, W] is one channel; other dtypes are refused.
/// Items whose H x W differ from options.shape are prepared by options.prep (padding after the
/// range scaling and channel conversion, so pad_value is in the data range), else resized when
/// options.resize; otherwise the mismatch is refused, naming the field `data_prep`.
/// Channels follow options.shape[0]: 1->3 replicates, 3->1 is luminance 0.299R + 0.587G + 0.114B,
/// 4->3 drops alpha; describe() says which conversion and resizing happened.
std::unique_ptr<Dataset> open_dataset(const std::string& path, const DatasetOptions& options);

}  // namespace scoreflow::io
