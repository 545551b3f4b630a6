#pragma once
/// Sample files as rows: what `eval fid` reads for --samples and --ref-data, and what a C++
/// evaluation reads the same way (docs/design.md §1: io/ knows no model).
#include <torch/types.h>

#include <cstdint>
#include <string>

namespace scoreflow::io {

/// Rows of samples in [lo, hi] from `path`: a float array in a .npy, or in an .npz under
/// `samples`, `arr_0` or `data` (points [N, d] or NCHW images, as they are); uint8 `images` (NHWC,
/// `sample --npz` and ADM/EDM archives), image folders and the other datasets open_dataset reads
/// are scaled into [lo, hi]. `limit` > 0 keeps the first `limit` rows. Returns float32 on the CPU;
/// throws Error naming the path for anything that is not [N, ...].
torch::Tensor load_sample_rows(const std::string& path, double lo, double hi, int64_t limit = 0);

}  // namespace scoreflow::io
