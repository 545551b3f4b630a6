#include "scoreflow/image.h"

#include <stb_image.h>
#include <stb_image_write.h>

#include <climits>
#include <cmath>
#include <cstring>

#include "io/fsutil.h"
#include "scoreflow/error.h"

namespace scoreflow::io {
namespace {

constexpr int kMaxSide = 16384;
constexpr int64_t kMaxPixels = int64_t(1) << 28;

void check_range(double lo, double hi, const char* fn) {
  if (!(hi > lo)) fail(fn, ": data range must have hi > lo, got [", lo, ", ", hi, "]");
}

/// stb reads BMP pixel rows past the end of a truncated file as zeros without complaint, so check
/// that the (uncompressed) pixel array the header promises is actually there.
void check_bmp_complete(const std::vector<uint8_t>& b, const std::string& path) {
  if (b.size() < 54 || b[0] != 'B' || b[1] != 'M') return;
  auto u32 = [&](size_t o) {
    return uint32_t(b[o]) | uint32_t(b[o + 1]) << 8 | uint32_t(b[o + 2]) << 16 | uint32_t(b[o + 3]) << 24;
  };
  const uint32_t data_offset = u32(10), compression = u32(30);
  const int64_t width = static_cast<int32_t>(u32(18)), height = static_cast<int32_t>(u32(22));
  const int64_t bpp = b[28] | b[29] << 8;
  if (compression != 0 && compression != 3) return;  // RLE: size not known from the header
  const int64_t row = (std::abs(width) * bpp + 31) / 32 * 4;
  if (int64_t(data_offset) + row * std::abs(height) > int64_t(b.size()))
    fail("cannot decode image '", path, "': truncated BMP (", b.size(), " bytes, header needs ",
         int64_t(data_offset) + row * std::abs(height), ")");
}

/// stb decodes a truncated JPEG's missing scan data as grey; a complete file has an EOI marker
/// (FF D9) after its last start-of-scan (FF DA). Entropy-coded data cannot contain either marker.
void check_jpeg_complete(const std::vector<uint8_t>& b, const std::string& path) {
  if (b.size() < 3 || b[0] != 0xFF || b[1] != 0xD8) return;
  size_t last_sos = 0;
  for (size_t i = 0; i + 1 < b.size(); ++i)
    if (b[i] == 0xFF && b[i + 1] == 0xDA) last_sos = i;
  for (size_t i = last_sos; i + 1 < b.size(); ++i)
    if (b[i] == 0xFF && b[i + 1] == 0xD9) return;
  fail("cannot decode image '", path, "': truncated JPEG (no end-of-image marker)");
}

/// stb grows its IDAT buffer to whatever a chunk's length field claims before reading the chunk,
/// so a 73-byte file could make it allocate 2 GiB (found by fuzz_image); every chunk must fit in
/// the file, and the file must reach IEND.
void check_png_chunks(const std::vector<uint8_t>& b, const std::string& path) {
  static const uint8_t kPng[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (b.size() < 8 || std::memcmp(b.data(), kPng, 8) != 0) return;
  for (size_t pos = 8; pos + 8 <= b.size();) {
    const uint64_t len = uint64_t(b[pos]) << 24 | b[pos + 1] << 16 | b[pos + 2] << 8 | b[pos + 3];
    const std::string type(reinterpret_cast<const char*>(&b[pos + 4]), 4);
    if (len + 12 > b.size() - pos)
      fail("cannot decode image '", path, "': truncated PNG (chunk '", type, "' claims ", len, " bytes, ",
           b.size() - pos - 8, " left)");
    if (type == "IEND") return;
    pos += len + 12;
  }
  fail("cannot decode image '", path, "': truncated PNG (no IEND chunk)");
}

}  // namespace

torch::Tensor to_uint8_nhwc(const torch::Tensor& x, double lo, double hi) {
  check_range(lo, hi, "to_uint8_nhwc");
  if (x.dim() != 4) fail("to_uint8_nhwc: expected [N, C, H, W], got ", x.sizes());
  const int64_t c = x.size(1);
  if (c != 1 && c != 3 && c != 4) fail("to_uint8_nhwc: expected 1, 3 or 4 channels, got ", c);
  // Double precision so that values exactly on a half step (e.g. 0.5/255) round predictably;
  // floor(v + 0.5) on clamped non-negative v is round-half-away-from-zero.
  torch::Tensor v = x.detach().to(torch::kCPU, torch::kDouble);
  v = torch::nan_to_num(v, 0.0, 255.0, 0.0);  // NaN -> 0 is arbitrary but defined
  v = ((v - lo) * (255.0 / (hi - lo))).clamp(0.0, 255.0).add(0.5).floor();
  return v.to(torch::kByte).permute({0, 2, 3, 1}).contiguous();
}

torch::Tensor from_uint8_nhwc(const torch::Tensor& images, double lo, double hi) {
  check_range(lo, hi, "from_uint8_nhwc");
  if (images.dim() != 4 || images.scalar_type() != torch::kByte)
    fail("from_uint8_nhwc: expected uint8 [N, H, W, C], got ", images.scalar_type(), " ", images.sizes());
  torch::Tensor v = images.to(torch::kCPU).permute({0, 3, 1, 2}).to(torch::kFloat);
  return (v * static_cast<float>((hi - lo) / 255.0) + static_cast<float>(lo)).contiguous();
}

torch::Tensor make_grid(const torch::Tensor& images, int ncols, int padding, uint8_t pad_value) {
  if (images.dim() != 4 || images.scalar_type() != torch::kByte)
    fail("make_grid: expected uint8 [N, H, W, C], got ", images.scalar_type(), " ", images.sizes());
  const int64_t n = images.size(0), h = images.size(1), w = images.size(2), c = images.size(3);
  if (n < 1) fail("make_grid: no images");
  if (ncols < 0 || padding < 0) fail("make_grid: ncols and padding must be >= 0, got ", ncols, ", ", padding);
  int64_t cols = ncols > 0 ? ncols : static_cast<int64_t>(std::ceil(std::sqrt(double(n))));
  cols = std::min(cols, n);  // never draw empty columns
  const int64_t rows = (n + cols - 1) / cols;
  // Padding only between tiles; unused cells of the last row are pad_value.
  torch::Tensor grid = torch::full({rows * h + (rows - 1) * padding, cols * w + (cols - 1) * padding, c}, pad_value,
                                   torch::TensorOptions().dtype(torch::kByte));
  const torch::Tensor src = images.to(torch::kCPU);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = (i / cols) * (h + padding), x = (i % cols) * (w + padding);
    grid.slice(0, y, y + h).slice(1, x, x + w).copy_(src[i]);
  }
  return grid;
}

void write_png(const std::string& path, const torch::Tensor& hwc) {
  if (hwc.dim() != 3 || hwc.scalar_type() != torch::kByte)
    fail("cannot write '", path, "': expected uint8 [H, W, C], got ", hwc.scalar_type(), " ", hwc.sizes());
  const int64_t h = hwc.size(0), w = hwc.size(1), c = hwc.size(2);
  if (c < 1 || c > 4 || h < 1 || w < 1 || h > INT_MAX / 4 || w > INT_MAX / 4 / c)
    fail("cannot write '", path, "': cannot store a ", h, "x", w, "x", c, " image as PNG");
  const torch::Tensor img = hwc.to(torch::kCPU).contiguous();
  std::string png;
  auto sink = [](void* ctx, void* data, int size) {
    static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), size);
  };
  if (!stbi_write_png_to_func(sink, &png, int(w), int(h), int(c), img.data_ptr<uint8_t>(), int(w * c)))
    fail("cannot write '", path, "': PNG encoding failed");
  write_file_atomic(path, png);
}

torch::Tensor read_image(const std::string& path, int channels) {
  if (channels < 0 || channels > 4) fail("read_image: channels must be 0..4, got ", channels);
  const std::vector<uint8_t> bytes = read_file(path);
  if (bytes.empty()) fail("cannot decode image '", path, "': file is empty (0 bytes)");
  if (bytes.size() > size_t(INT_MAX)) fail("cannot decode image '", path, "': file is larger than 2 GiB");
  const int len = static_cast<int>(bytes.size());
  int w = 0, h = 0, stored = 0;
  // Header first: refuse absurd dimensions before the decoder allocates w*h*c bytes.
  if (!stbi_info_from_memory(bytes.data(), len, &w, &h, &stored)) {
    // stb refuses PNGs over 2^30 bytes itself, but its message is lost when it goes on to try the
    // other formats ("unknown image type"); read the IHDR size so that the error says why.
    static const uint8_t kPng[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (bytes.size() >= 24 && std::memcmp(bytes.data(), kPng, 8) == 0 && std::memcmp(&bytes[12], "IHDR", 4) == 0) {
      auto be32 = [&](size_t o) {
        return uint32_t(bytes[o]) << 24 | bytes[o + 1] << 16 | bytes[o + 2] << 8 | bytes[o + 3];
      };
      w = static_cast<int>(std::min<uint32_t>(be32(16), INT_MAX));
      h = static_cast<int>(std::min<uint32_t>(be32(20), INT_MAX));
      if (w > kMaxSide || h > kMaxSide || int64_t(w) * h > kMaxPixels)
        fail("cannot decode image '", path, "': dimensions ", w, "x", h, " are absurd (limit ", kMaxSide,
             " per side, 2^28 pixels); corrupt header?");
    }
    fail("cannot decode image '", path, "': ", stbi_failure_reason(), " (not a PNG/JPEG/BMP, or corrupt)");
  }
  if (w < 1 || h < 1 || w > kMaxSide || h > kMaxSide || int64_t(w) * h > kMaxPixels)
    fail("cannot decode image '", path, "': dimensions ", w, "x", h, " are absurd (limit ", kMaxSide,
         " per side, 2^28 pixels); corrupt header?");
  check_bmp_complete(bytes, path);
  check_jpeg_complete(bytes, path);
  check_png_chunks(bytes, path);
  int w2 = 0, h2 = 0, c2 = 0;
  stbi_uc* pixels = stbi_load_from_memory(bytes.data(), len, &w2, &h2, &c2, channels);
  if (!pixels) fail("cannot decode image '", path, "': ", stbi_failure_reason());
  const int c = channels > 0 ? channels : c2;
  torch::Tensor out = torch::empty({h2, w2, c}, torch::TensorOptions().dtype(torch::kByte));
  std::memcpy(out.data_ptr<uint8_t>(), pixels, size_t(w2) * h2 * c);
  stbi_image_free(pixels);
  return out;
}

}  // namespace scoreflow::io
