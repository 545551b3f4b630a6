#include "io/dataset_util.h"

#include <stb_image_resize.h>

#include <cmath>
#include <sstream>

#include "scoreflow/error.h"

namespace scoreflow::io::detail {

std::string shape_text(const std::vector<int64_t>& chw) {
  std::string out;
  for (size_t i = 0; i < chw.size(); ++i) out += (i ? "x" : "") + std::to_string(chw[i]);
  return out;
}

void check_options(const DatasetOptions& options, const std::string& path) {
  const DataPrep& p = options.prep;
  if (p.pad_top < 0 || p.pad_bottom < 0 || p.pad_left < 0 || p.pad_right < 0)
    fail("dataset '", path, "': data_prep pad must be >= 0, got ", p.describe());
  if (p.padded() && p.resize) fail("dataset '", path, "': data_prep gives pad and resize; give one");
  if (!(options.hi > options.lo))
    fail("dataset '", path, "': data range must have hi > lo, got [", options.lo, ", ", options.hi, "]");
  if (options.shape.empty()) return;
  bool ok = options.shape.size() == 3;
  for (int64_t d : options.shape) ok = ok && d > 0;
  if (!ok)
    fail("dataset '", path, "': wanted shape must be [C, H, W] with positive sizes, got [", shape_text(options.shape),
         "]");
}

std::vector<int64_t> target_shape(const std::vector<int64_t>& stored, const DatasetOptions& options,
                                  const std::string& path) {
  if (options.shape.empty()) return stored;
  const std::vector<int64_t>& want = options.shape;
  const int64_t from = stored[0], to = want[0];
  const bool channels_ok =
      from == to || (from == 1 && to == 3) || (from == 3 && to == 1) || (from == 4 && (to == 3 || to == 1));
  if (!channels_ok)
    fail("dataset '", path, "' holds ", shape_text(stored), " items but ", shape_text(want),
         " was asked for: cannot convert ", from, " channels to ", to, " (only 1->3, 3->1, 4->3, 4->1)");
  if ((stored[1] != want[1] || stored[2] != want[2]) && !pads(stored, options) && !resizes(options))
    fail_mismatch("dataset '" + path + "' holds " + shape_text(stored) + " items", stored, options);
  return want;
}

bool pads(const std::vector<int64_t>& stored, const DatasetOptions& options) {
  const DataPrep& p = options.prep;
  const std::vector<int64_t>& want = options.shape;
  return p.padded() && want.size() == 3 && (stored[1] != want[1] || stored[2] != want[2]) &&
         stored[1] + p.pad_top + p.pad_bottom == want[1] && stored[2] + p.pad_left + p.pad_right == want[2];
}

bool resizes(const DatasetOptions& options) { return options.resize || options.prep.resize; }

void fail_mismatch(const std::string& what, const std::vector<int64_t>& stored, const DatasetOptions& options) {
  const DataPrep& p = options.prep;
  const std::vector<int64_t>& want = options.shape;
  if (p.padded())
    fail(what, " but ", shape_text(want), " was asked for: data_prep ", p.describe(), " makes ",
         want[1] - p.pad_top - p.pad_bottom, "x", want[2] - p.pad_left - p.pad_right, " items ", want[1], "x", want[2],
         ", not ", stored[1], "x", stored[2],
         " (these are not the images the model was trained on, or its metadata field 'data_prep' is wrong)");
  fail(what, " but ", shape_text(want), " was asked for: the model's metadata field 'data_prep' must say how ",
       "its training images were made from such items ({\"pad\": N, \"pad_value\": V} adds N pixels of value V ",
       "around each side, {\"resize\": \"center_crop\"} crops and resizes)");
}

torch::Tensor resize_center_crop(const torch::Tensor& hwc, int64_t th, int64_t tw) {
  const int64_t h = hwc.size(0), w = hwc.size(1), c = hwc.size(2);
  if (h == th && w == tw) return hwc;
  // Largest centred crop with the target's aspect ratio, then one resample to the target size.
  const double scale = std::max(double(th) / h, double(tw) / w);
  const int64_t ch = std::min(h, std::max<int64_t>(1, std::llround(th / scale)));
  const int64_t cw = std::min(w, std::max<int64_t>(1, std::llround(tw / scale)));
  const int64_t y0 = (h - ch) / 2, x0 = (w - cw) / 2;
  const torch::Tensor in = hwc.contiguous();
  torch::Tensor out = torch::empty({th, tw, c}, in.options());
  bool ok;
  if (in.scalar_type() == torch::kByte) {
    const uint8_t* src = in.data_ptr<uint8_t>() + (y0 * w + x0) * c;
    ok = stbir_resize_uint8(src, int(cw), int(ch), int(w * c), out.data_ptr<uint8_t>(), int(tw), int(th), 0, int(c));
  } else {
    const float* src = in.data_ptr<float>() + (y0 * w + x0) * c;
    ok = stbir_resize_float(src, int(cw), int(ch), int(w * c * sizeof(float)), out.data_ptr<float>(), int(tw), int(th),
                            0, int(c));
  }
  if (!ok) fail("resize: stb_image_resize failed for ", h, "x", w, " -> ", th, "x", tw);
  return out;
}

TensorDataset::TensorDataset(torch::Tensor stored_nchw, std::string kind, std::string path, std::string note,
                             const DatasetOptions& options, int64_t skipped)
    : stored_(std::move(stored_nchw)),
      kind_(std::move(kind)),
      path_(std::move(path)),
      note_(std::move(note)),
      options_(options),
      skipped_(skipped) {
  if (stored_.dim() != 4 || stored_.size(0) == 0)
    fail("dataset '", path_, "' holds no images (stored shape ", stored_.sizes(), ")");
  target_ = target_shape({stored_.size(1), stored_.size(2), stored_.size(3)}, options_, path_);
}

torch::Tensor TensorDataset::batch(int64_t begin, int64_t count) const {
  if (begin < 0 || count < 0 || begin + count > size())
    fail("dataset '", path_, "': batch [", begin, ", ", begin + count, ") is outside [0, ", size(), ")");
  const double lo = options_.lo, hi = options_.hi;
  torch::Tensor x = stored_.slice(0, begin, begin + count);
  x = x.scalar_type() == torch::kByte ? x.to(torch::kFloat) * float((hi - lo) / 255.0) + float(lo)
                                      : x.to(torch::kFloat);
  // Channels: replicate grey; ITU-R BT.601 luminance for colour -> grey (weights sum to 1, so it
  // is valid in any data range); drop alpha.
  const int64_t from = x.size(1), to = target_[0];
  if (from == 1 && to == 3) x = x.expand({x.size(0), 3, x.size(2), x.size(3)});
  if (from == 4) x = x.slice(1, 0, 3);
  if (from >= 3 && to == 1)
    x = (0.299f * x.select(1, 0) + 0.587f * x.select(1, 1) + 0.114f * x.select(1, 2)).unsqueeze(1);
  if (pads({from, x.size(2), x.size(3)}, options_)) {
    const DataPrep& p = options_.prep;
    x = torch::constant_pad_nd(x, {p.pad_left, p.pad_right, p.pad_top, p.pad_bottom}, p.pad_value);
  }
  if (x.size(2) != target_[1] || x.size(3) != target_[2]) {
    torch::Tensor hwc = x.permute({0, 2, 3, 1}).contiguous();
    std::vector<torch::Tensor> resized;
    for (int64_t i = 0; i < hwc.size(0); ++i) resized.push_back(resize_center_crop(hwc[i], target_[1], target_[2]));
    // The resampling filters overshoot at edges; keep the promise of values in [lo, hi].
    x = torch::stack(resized).permute({0, 3, 1, 2}).clamp(lo, hi);
  }
  return x.contiguous();
}

std::string TensorDataset::describe() const {
  const std::vector<int64_t> stored = {stored_.size(1), stored_.size(2), stored_.size(3)};
  std::string out = kind_ + " " + path_ + " (" + std::to_string(size()) + " images " + shape_text(target_);
  if (!note_.empty()) out += ", " + note_;
  const int64_t from = stored[0], to = target_[0];
  if (from == 1 && to == 3) out += ", grey replicated to RGB";
  if (from >= 3 && to == 1) out += ", RGB to grey by luminance 0.299R+0.587G+0.114B";
  if (from == 4 && to == 3) out += ", alpha dropped";
  if (pads(stored, options_))
    out += ", padded from " + std::to_string(stored[1]) + "x" + std::to_string(stored[2]) + " by data_prep " +
           options_.prep.describe();
  else if (stored[1] != target_[1] || stored[2] != target_[2])
    out += ", resized + centre-cropped from " + std::to_string(stored[1]) + "x" + std::to_string(stored[2]);
  if (skipped_) out += ", " + std::to_string(skipped_) + " unreadable files skipped";
  return out + ")";
}

}  // namespace scoreflow::io::detail

namespace scoreflow::io {

std::string DataPrep::describe() const {
  if (empty()) return "";
  if (resize) return "{\"resize\": \"center_crop\"}";
  std::ostringstream os;
  os << "{\"pad\": ";
  if (pad_top == pad_bottom && pad_top == pad_left && pad_top == pad_right)
    os << pad_top;
  else
    os << "[" << pad_top << ", " << pad_bottom << ", " << pad_left << ", " << pad_right << "]";
  os << ", \"pad_value\": " << pad_value << "}";
  return os.str();
}

}  // namespace scoreflow::io
