/// open_dataset: picks the reader by what `path` is, and the idx / .npy / .npz readers.
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "io/dataset_util.h"
#include "scoreflow/error.h"
#include "scoreflow/npy.h"

namespace scoreflow::io {
namespace fs = std::filesystem;

namespace detail {
namespace {

/// Closes a gzFile on every path out of open_idx.
struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

/// Reads exactly `n` decompressed bytes; false if the stream ends first.
bool gz_read_exact(gzFile f, uint8_t* out, uint64_t n, const std::string& path) {
  while (n > 0) {
    const unsigned chunk = static_cast<unsigned>(std::min<uint64_t>(n, 1u << 30));
    const int got = gzread(f, out, chunk);
    if (got < 0) {
      int err = 0;
      fail("cannot read idx '", path, "': ", gzerror(f, &err));
    }
    if (got == 0) return false;
    out += got;
    n -= static_cast<uint64_t>(got);
  }
  return true;
}

std::string fix_truncation(gzFile f) {
  int err = 0;
  const char* msg = gzerror(f, &err);
  return err != Z_OK && msg ? std::string(" (") + msg + ")" : std::string();
}

}  // namespace

std::unique_ptr<Dataset> open_idx(const std::string& path, const DatasetOptions& options) {
  // gzread passes uncompressed files through unchanged, so one code path serves idx and idx.gz.
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f) fail("cannot read idx '", path, "': ", std::strerror(errno));
  // Header (LeCun's format): 0, 0, element type, ndim, then ndim big-endian u32 sizes.
  uint8_t magic[4];
  if (!gz_read_exact(f.get(), magic, 4, path))
    fail("idx '", path, "' is truncated: no 4-byte magic", fix_truncation(f.get()));
  if (magic[0] != 0 || magic[1] != 0) fail("'", path, "' is not an idx file (bad magic)");
  if (magic[2] != 0x08)
    fail("idx '", path, "': element type 0x", std::hex, int(magic[2]), std::dec,
         " is not supported (images must be unsigned bytes, type 0x08)");
  const int ndim = magic[3];
  if (ndim == 1) fail("idx '", path, "' is a 1-d (label) file, not images");
  if (ndim != 3) fail("idx '", path, "': expected 3 dimensions [N, H, W], header says ", ndim);
  uint8_t dims_be[12];
  if (!gz_read_exact(f.get(), dims_be, 12, path))
    fail("idx '", path, "' is truncated inside its header", fix_truncation(f.get()));
  int64_t dims[3];
  for (int i = 0; i < 3; ++i)
    dims[i] = int64_t(dims_be[4 * i]) << 24 | dims_be[4 * i + 1] << 16 | dims_be[4 * i + 2] << 8 | dims_be[4 * i + 3];
  const int64_t n = dims[0], h = dims[1], w = dims[2];
  if (n < 1 || h < 1 || w < 1 || h > 16384 || w > 16384)
    fail("idx '", path, "': header says ", n, " images of ", h, "x", w, ", which is impossible");
  const uint64_t need = uint64_t(n) * uint64_t(h) * uint64_t(w);
  // A lying header must not make us allocate: raw data has exactly `need` bytes after the 16-byte
  // header, and deflate cannot expand more than ~1032:1.
  std::error_code ec;
  const uint64_t file_size = fs::file_size(path, ec);
  const bool raw = gzdirect(f.get()) == 1;
  if (!ec && (raw ? need + 16 > file_size : need > file_size * 1032 + 1024))
    fail("idx '", path, "' is truncated or its header lies: ", n, "x", h, "x", w, " = ", need,
         " pixel bytes promised, the ", raw ? "" : "compressed ", "file has ", file_size, " bytes");
  torch::Tensor images = torch::empty({n, 1, h, w}, torch::TensorOptions().dtype(torch::kByte));
  if (!gz_read_exact(f.get(), images.data_ptr<uint8_t>(), need, path))
    fail("idx '", path, "' is truncated: header promises ", n, "x", h, "x", w, " = ", need, " pixel bytes",
         fix_truncation(f.get()));
  uint8_t extra;
  if (gzread(f.get(), &extra, 1) != 0)
    fail("idx '", path, "': data continues after the ", n, "x", h, "x", w,
         " pixels the header describes (wrong header?)");
  return std::make_unique<TensorDataset>(images, "idx", path, "uint8", options);
}

namespace {

/// Layout rule for image arrays (documented on open_dataset): uint8 is NHWC when the last axis is
/// 1, 3 or 4 (ADM/EDM sample archives), else NCHW when axis 1 is; float is NCHW when axis 1 is 1,
/// 3 or 4 (scoreflow's `samples`, torch's layout), else NHWC when the last axis is; [N, H, W] is
/// one channel. Floats are taken as already in the data range; uint8 is scaled from [0, 255].
std::unique_ptr<Dataset> from_array(const NpyArray& array, const std::string& kind, const std::string& path,
                                    const DatasetOptions& options) {
  const auto& s = array.shape;
  const bool is_u8 = array.dtype == "|u1";
  const bool is_float = array.dtype == "<f4" || array.dtype == "<f8" || array.dtype == "<f2";
  if (!is_u8 && !is_float)
    fail(kind, " '", path, "': dtype ", array.dtype, " is not an image type (use uint8 in [0, 255] or ",
         "float in the data range)");
  auto is_c = [](int64_t d) { return d == 1 || d == 3 || d == 4; };
  torch::Tensor t = to_tensor(array);
  std::string layout;
  if (s.size() == 3) {
    t = t.unsqueeze(1), layout = "NHW";
  } else if (s.size() == 4) {
    const bool nhwc = is_u8 ? is_c(s[3]) : (!is_c(s[1]) && is_c(s[3]));
    const bool nchw = !nhwc && is_c(s[1]);
    if (!nhwc && !nchw)
      fail(kind, " '", path, "': cannot tell channels in shape [", shape_text(s), "] (expected 1, 3 or 4 ",
           "channels in axis 1 (NCHW) or axis 3 (NHWC))");
    if (nhwc) t = t.permute({0, 3, 1, 2});
    layout = nhwc ? "NHWC" : "NCHW";
  } else {
    fail(kind, " '", path, "': expected images [N, H, W], [N, C, H, W] or [N, H, W, C], got shape [", shape_text(s),
         "]");
  }
  std::string note = (is_u8 ? "uint8 " : "float ") + layout;
  if (is_float) {
    t = t.to(torch::kFloat);
    if (t.numel())
      note += ", values in [" + std::to_string(t.min().item<float>()) + ", " + std::to_string(t.max().item<float>()) +
              "] used as they are";
  }
  return std::make_unique<TensorDataset>(t.contiguous(), kind, path, note, options);
}

}  // namespace

std::unique_ptr<Dataset> open_npy(const std::string& path, const DatasetOptions& options) {
  return from_array(read_npy(path), "npy", path, options);
}

std::unique_ptr<Dataset> open_npz(const std::string& path, const DatasetOptions& options) {
  const auto arrays = read_npz(path);
  std::vector<std::string> keys;
  for (const auto& kv : arrays) keys.push_back(kv.first);
  std::string key = options.key;
  if (key.empty()) {
    // Our own --npz writes both "samples" (float) and "images" (uint8): prefer the exact pixels.
    for (const char* k : {"images", "arr_0"})
      if (arrays.count(k) && key.empty()) key = k;
    if (key.empty() && arrays.size() == 1) key = keys[0];
    if (key.empty()) fail("npz '", path, "': no 'images' or 'arr_0' array; choose a key from: ", join(keys));
  }
  const auto it = arrays.find(key);
  if (it == arrays.end()) fail("npz '", path, "' has no array '", key, "'; keys: ", join(keys));
  return from_array(it->second, "npz", path + " key '" + key + "'", options);
}

}  // namespace detail

std::unique_ptr<Dataset> open_dataset(const std::string& path, const DatasetOptions& options) {
  detail::check_options(options, path);
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("dataset '", path, "' does not exist");
  if (fs::is_directory(path, ec)) return detail::open_image_folder(path, options);

  std::string lower = fs::path(path).filename().string();
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  auto ends_with = [&](const std::string& s) {
    return lower.size() >= s.size() && lower.compare(lower.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with(".npy")) return detail::open_npy(path, options);
  if (ends_with(".npz")) return detail::open_npz(path, options);
  if (ends_with(".gz") || ends_with(".idx") || lower.find("-ubyte") != std::string::npos ||
      lower.find("idx") != std::string::npos)
    return detail::open_idx(path, options);
  fail("cannot tell what kind of dataset '", path, "' is: expected a directory of PNG/JPEG/BMP images, ",
       "an idx file (*.idx, *-ubyte, optionally .gz), *.npy or *.npz");
}

}  // namespace scoreflow::io
