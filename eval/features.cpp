// Feature networks (TorchScript) with input adaptation, and mu/sigma statistics files.
#include "scoreflow/features.h"

#include <torch/nn/functional/upsampling.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/prefetch.h"
#include "models/sizes_text.h"
#include "scoreflow/error.h"
#include "scoreflow/model.h"
#include "scoreflow/npy.h"

namespace scoreflow::eval {
namespace {

std::string first_line(const std::string& text) { return summarize_torch_error(text); }

}  // namespace

struct FeatureExtractor::Impl {
  torch::jit::Module module;
};

FeatureExtractor::FeatureExtractor(const std::string& path, torch::Device device) : path_(path), device_(device) {
  if (identity()) return;
  torch::jit::ExtraFilesMap extra{{"scoreflow.json", ""}};
  impl_ = std::make_unique<Impl>();
  try {
    impl_->module = torch::jit::load(path, device, extra);
  } catch (const c10::Error& e) {
    fail("feature network '", path, "' could not be loaded as TorchScript: ", first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    fail("feature network '", path, "' could not be loaded: ", first_line(e.what()));
  }
  impl_->module.eval();
  if (!extra["scoreflow.json"].empty()) {
    nlohmann::json meta;
    try {
      meta = nlohmann::json::parse(extra["scoreflow.json"]);
    } catch (const std::exception& e) {
      fail("feature network '", path, "': scoreflow.json is not valid JSON: ", e.what());
    }
    if (meta.contains("input_shape")) {
      const auto& s = meta["input_shape"];
      if (!s.is_array() || s.size() != 3)
        fail("feature network '", path, "': input_shape must be [C, H, W], got ", s.dump());
      for (const auto& v : s) {
        if (!v.is_number_integer() || v.get<int64_t>() < 1)
          fail("feature network '", path, "': input_shape must be positive integers, got ", s.dump());
        input_shape_.push_back(v.get<int64_t>());
      }
    }
    if (meta.contains("data_range")) {
      const auto& r = meta["data_range"];
      if (!r.is_array() || r.size() != 2 || !r[0].is_number() || !r[1].is_number() ||
          !(r[1].get<double>() > r[0].get<double>()))
        fail("feature network '", path, "': data_range must be [lo, hi] with hi > lo, got ", r.dump());
      net_lo_ = r[0].get<double>();
      net_hi_ = r[1].get<double>();
      has_range_ = true;
    }
  }
}

FeatureExtractor::~FeatureExtractor() = default;

torch::Tensor FeatureExtractor::operator()(const torch::Tensor& x, double lo, double hi, int64_t first_row) const {
  torch::Tensor features = extract(x, lo, hi);
  // One reduction and one host read when all is well (the common case); the row only on failure.
  if (torch::isfinite(features).all().item<bool>()) return features;
  torch::Tensor bad = (~torch::isfinite(features)).any(1).nonzero();
  if (bad.numel() > 0)
    fail(identity() ? "samples" : "feature network '" + path_ + "' features", " hold NaN or Inf (sample ",
         first_row + bad[0][0].item<int64_t>(), ")");
  return features;
}

torch::Tensor FeatureExtractor::extract(const torch::Tensor& x_in, double lo, double hi) const {
  auto note = [&](const std::string& text) {
    if (std::find(notes_.begin(), notes_.end(), text) == notes_.end()) notes_.push_back(text);
  };
  torch::NoGradGuard no_grad;
  torch::Tensor features;
  if (identity()) {
    features = x_in.reshape({x_in.size(0), -1}).to(torch::kCPU, torch::kFloat64);
  } else {
    // Pinned host rows (eval fid pins what it loads) go over without blocking the host.
    torch::Tensor x = x_in.to(device_, torch::kFloat32, /*non_blocking=*/x_in.is_pinned());
    if (!input_shape_.empty()) {
      if (x.dim() != 4)
        fail("feature network '", path_, "' takes images ", sizes_text(input_shape_), "; the samples have shape ",
             sizes_text(x.sizes().slice(1)));
      const int64_t c = x.size(1), want_c = input_shape_[0];
      if (c != want_c) {
        if (c == 1 && want_c == 3) {
          x = x.expand({x.size(0), 3, x.size(2), x.size(3)}).contiguous();
          note("1 -> 3 channels (replicated)");
        } else if (c == 3 && want_c == 1) {
          x = (0.299 * x.select(1, 0) + 0.587 * x.select(1, 1) + 0.114 * x.select(1, 2)).unsqueeze(1);
          note("3 -> 1 channel (ITU-R BT.601 luminance)");
        } else {
          fail("feature network '", path_, "' takes ", want_c, "-channel input ", sizes_text(input_shape_),
               "; the samples have ", c, " channels (only 1 <-> 3 is converted)");
        }
      }
      if (x.size(2) != input_shape_[1] || x.size(3) != input_shape_[2]) {
        note("resized " + std::to_string(x.size(2)) + "x" + std::to_string(x.size(3)) + " -> " +
             std::to_string(input_shape_[1]) + "x" + std::to_string(input_shape_[2]) +
             " (bilinear, torch interpolate, align_corners=false)");
        namespace F = torch::nn::functional;
        x = F::interpolate(x, F::InterpolateFuncOptions()
                                  .size(std::vector<int64_t>{input_shape_[1], input_shape_[2]})
                                  .mode(torch::kBilinear)
                                  .align_corners(false));
      }
    }
    if (has_range_ && (lo != net_lo_ || hi != net_hi_)) {
      x = (x - lo) / (hi - lo) * (net_hi_ - net_lo_) + net_lo_;
      std::ostringstream os;
      os << "values [" << lo << ", " << hi << "] -> [" << net_lo_ << ", " << net_hi_ << "]";
      note(os.str());
    }
    torch::jit::IValue out;
    try {
      out = impl_->module.forward({x});
    } catch (const c10::Error& e) {
      fail("feature network '", path_, "' rejected input of shape ", sizes_text(x.sizes()), ": ",
           first_line(e.what_without_backtrace()),
           input_shape_.empty() ? " (its scoreflow.json gives no input_shape to adapt to)" : "");
    } catch (const std::exception& e) {
      fail("feature network '", path_, "' rejected input of shape ", sizes_text(x.sizes()), ": ", first_line(e.what()));
    }
    if (!out.isTensor()) fail("feature network '", path_, "' returned ", out.tagKind(), ", expected a Tensor [B, D]");
    features = out.toTensor();
    if (features.dim() != 2 || features.size(0) != x.size(0))
      fail("feature network '", path_, "' returned shape ", sizes_text(features.sizes()), " for a batch of ", x.size(0),
           ", expected [B, D]");
    features = features.to(torch::kFloat64);
  }
  return features;
}

FeatureSet extract_features(const FeatureExtractor& fx, const torch::Tensor& x, double lo, double hi, int64_t batch,
                            bool keep_rows, int64_t first_row) {
  FeatureSet set;
  if (!x.defined() || x.size(0) == 0) return set;
  io::RowPrefetcher rows(x, batch, fx.identity() ? x.device() : fx.device());
  std::vector<torch::Tensor> finite, kept;  // kept: float64 features, never views of the prefetch buffers
  auto check_batch = [&](int64_t b) {
    const int64_t begin = rows.batch_begin(b), m = rows.batch_size(b);
    fx(x.narrow(0, begin, m), lo, hi, first_row + begin);  // throws naming the row
    fail(fx.identity() ? "samples" : "feature network '" + fx.path() + "' features", " hold NaN or Inf in rows ",
         first_row + begin, "..", first_row + begin + m - 1, " (not reproduced when that batch was run again)");
  };
  std::chrono::steady_clock::time_point first_done;
  for (int64_t b = 0; b < rows.batches(); ++b) {
    torch::Tensor f = fx.extract(rows.get(b), lo, hi);
    finite.push_back(torch::isfinite(f).all());
    set.moments.add(f, /*check_finite=*/false);  // the flags below check the same rows
    if (keep_rows) kept.push_back(f);
    if (b == 0) {
      if (!finite[0].item<bool>()) check_batch(0);
      first_done = std::chrono::steady_clock::now();
    } else {
      set.steady_rows += f.size(0);
    }
  }
  const torch::Tensor ok = torch::stack(finite).to(torch::kCPU);  // waits for every batch
  if (set.steady_rows > 0)
    set.steady_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - first_done).count();
  const auto* flags = ok.data_ptr<bool>();
  for (int64_t b = 0; b < ok.numel(); ++b)
    if (!flags[b]) check_batch(b);
  if (keep_rows) set.rows = torch::cat(kept);
  return set;
}

void FeatureSet::merge(const FeatureSet& other) {
  moments.merge(other.moments);
  if (other.rows.defined())
    rows = rows.defined() ? torch::cat({rows.to(torch::kCPU), other.rows.to(torch::kCPU)}) : other.rows.to(torch::kCPU);
  steady_rows += other.steady_rows;
  steady_seconds = std::max(steady_seconds, other.steady_seconds);
}

void save_feature_stats(const std::string& path, const torch::Tensor& mu, const torch::Tensor& sigma) {
  io::write_npz(path, {{"mu", io::from_tensor(mu.to(torch::kCPU, torch::kFloat64).contiguous())},
                       {"sigma", io::from_tensor(sigma.to(torch::kCPU, torch::kFloat64).contiguous())}});
}

std::pair<torch::Tensor, torch::Tensor> load_feature_stats(const std::string& path) {
  auto arrays = io::read_npz(path);
  std::vector<std::string> keys;
  for (auto& [k, v] : arrays) keys.push_back(k);
  for (const char* key : {"mu", "sigma"})
    if (!arrays.count(key))
      fail("statistics '", path, "' have no array '", key, "' (keys: ", join(keys),
           "); expected 'mu' [D] and 'sigma' [D, D]");
  torch::Tensor mu = io::to_tensor(arrays.at("mu")).to(torch::kFloat64);
  torch::Tensor sigma = io::to_tensor(arrays.at("sigma")).to(torch::kFloat64);
  if (mu.dim() != 1) fail("statistics '", path, "': 'mu' has shape ", sizes_text(mu.sizes()), ", expected [D]");
  if (sigma.dim() != 2 || sigma.size(0) != mu.size(0) || sigma.size(1) != mu.size(0))
    fail("statistics '", path, "': 'sigma' has shape ", sizes_text(sigma.sizes()), " but 'mu' has D = ", mu.size(0),
         "; expected [", mu.size(0), ", ", mu.size(0), "]");
  if (!torch::isfinite(mu).all().item<bool>() || !torch::isfinite(sigma).all().item<bool>())
    fail("statistics '", path, "' hold NaN or Inf values");
  return {mu, sigma};
}

}  // namespace scoreflow::eval
