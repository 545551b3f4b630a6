#pragma once
/// Images: float samples in a data range <-> uint8, grids, PNG/JPEG via stb.
#include <torch/types.h>

#include <string>

namespace scoreflow::io {

/// [N, C, H, W] float in [lo, hi] -> [N, H, W, C] uint8 (round half away, clamp). C in {1, 3, 4}.
torch::Tensor to_uint8_nhwc(const torch::Tensor& x, double lo, double hi);
/// [N, H, W, C] uint8 -> [N, C, H, W] float32 in [lo, hi].
torch::Tensor from_uint8_nhwc(const torch::Tensor& images, double lo, double hi);

/// Tiles [N, H, W, C] uint8 into one [H', W', C] image with `ncols` columns (0: ceil(sqrt(N)))
/// and `padding` pixels of `pad_value` between tiles.
torch::Tensor make_grid(const torch::Tensor& images, int ncols = 0, int padding = 2, uint8_t pad_value = 0);

/// Writes [H, W, C] uint8 as PNG, atomically. Throws Error naming the path.
void write_png(const std::string& path, const torch::Tensor& hwc);
/// Reads PNG/JPEG/BMP/... into [H, W, C] uint8 (C as stored, or `channels` if > 0). Throws Error
/// naming the file for missing, empty, truncated or absurdly large images.
torch::Tensor read_image(const std::string& path, int channels = 0);

}  // namespace scoreflow::io
