#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "scoreflow/error.h"
#include "scoreflow/model.h"

namespace scoreflow {

std::pair<torch::Tensor, torch::Tensor> Model::denoise_with_head(const torch::Tensor&, const std::vector<double>&,
                                                                 const torch::Tensor&) const {
  fail("model ", name(), " has no second-moment head (metadata 'head' is none; SN-DPM needs eps2, NPR-DPM epsc)");
}

torch::Tensor Model::features(const torch::Tensor&, const std::vector<double>&, const torch::Tensor&) const {
  fail("model ", name(), " exposes no bottleneck features (metadata 'features' is absent)");
}

torch::ScalarType parse_inference_dtype(const std::string& name) {
  if (name == "fp32") return torch::kFloat32;
  if (name == "fp16") return torch::kHalf;
  if (name == "bf16") return torch::kBFloat16;
  fail(Field{"dtype"}, " '", name, "' is unknown; valid: fp32, fp16, bf16");
}

std::string inference_dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32: return "fp32";
    case torch::kHalf: return "fp16";
    case torch::kBFloat16: return "bf16";
    default: return c10::toString(dtype);
  }
}

void Model::configure(const InferenceOptions& options) {
  if (options.dtype != torch::kFloat32)
    fail(Field{"dtype"}, " ", inference_dtype_name(options.dtype), " is for TorchScript networks on CUDA; ", name(),
         " computes in float32/float64 (use fp32)");
  inference_ = options;
}

std::string Model::inference_note() const {
  return inference_.cuda_graph ? "CUDA graphs are for TorchScript networks on CUDA; " + name() + " runs eagerly" : "";
}

void Model::network_only(const torch::Tensor& x, double sigma, int iterations, bool) const {
  torch::NoGradGuard no_grad;
  for (int i = 0; i < iterations; ++i) denoise(x, {sigma}, {});
}

Denoiser::Denoiser(std::shared_ptr<const Model> model, Conditioning cond)
    : model_(std::move(model)), cond_(std::move(cond)) {
  const ModelMetadata& m = model_->metadata();
  if (cond_.guidance != 1.0 && m.num_classes == 0)
    fail(Field{"guidance"}, " ", cond_.guidance, " needs a class-conditional model; ", model_->name(), " has num_classes 0");
  if (cond_.labels.defined() && m.num_classes > 0) {
    auto lo = cond_.labels.min().item<int64_t>(), hi = cond_.labels.max().item<int64_t>();
    if (lo < 0 || hi >= m.num_classes)
      fail("class label ", (lo < 0 ? lo : hi), " is outside [0, ", m.num_classes - 1, "]");
  }
}

torch::Tensor Denoiser::operator()(const torch::Tensor& x, double sigma) const { return evaluate(x, {sigma}); }

torch::Tensor Denoiser::operator()(const torch::Tensor& x, const std::vector<double>& sigma) const {
  if (sigma.size() != 1 && static_cast<int64_t>(sigma.size()) != x.size(0))
    fail("denoiser: ", sigma.size(), " sigmas for a batch of ", x.size(0));
  // One σ shared by the batch (e.g. AMED with fixed or table coefficients) takes the one-σ path:
  // no per-sample host-to-device copy, and the CUDA graph applies.
  if (sigma.size() > 1 && std::all_of(sigma.begin(), sigma.end(), [&](double s) { return s == sigma.front(); }))
    return evaluate(x, {sigma.front()});
  return evaluate(x, sigma);
}

torch::Tensor Denoiser::evaluate(const torch::Tensor& x, const std::vector<double>& sigma) const {
  ++nfe_;
  // The input is the sampler's state (or a stage of a step): a state that overflowed would make
  // the output non-finite too, and the network would be blamed for it.
  const bool deferred = defer_on_cpu_ || !x.device().is_cpu();
  if (!deferred && !torch::isfinite(x).all().item<bool>()) fail_state({sigma.front(), step_, call_in_step_});
  const int num_classes = model_->metadata().num_classes;
  torch::Tensor out;
  if (num_classes > 0 && cond_.guidance != 1.0) {
    // Classifier-free guidance: conditional and unconditional (label = num_classes) in one batch.
    torch::Tensor labels = cond_.labels.defined()
                               ? cond_.labels.to(x.device())
                               : torch::full({x.size(0)}, num_classes, x.options().dtype(torch::kLong));
    torch::Tensor both = model_->denoise(
        torch::cat({x, x}), sigma.size() == 1 ? sigma : [&] {
          std::vector<double> s2(sigma);
          s2.insert(s2.end(), sigma.begin(), sigma.end());
          return s2;
        }(),
        torch::cat({labels, torch::full_like(labels, num_classes)}));
    auto parts = both.chunk(2);
    out = parts[1] + cond_.guidance * (parts[0] - parts[1]);
  } else {
    torch::Tensor labels = cond_.labels;
    if (num_classes > 0 && !labels.defined())
      labels = torch::full({x.size(0)}, num_classes, x.options().dtype(torch::kLong));  // unconditional
    out = model_->denoise(x, sigma, labels.defined() ? labels.to(x.device()) : labels);
  }
  const CallSite site{sigma.front(), step_, call_in_step_++};
  if (deferred)
    record_extremes(x, out, site);
  else if (!torch::isfinite(out).all().item<bool>())
    fail_output(site, sigma.size() > 1);
  return out;
}

void Denoiser::record_extremes(const torch::Tensor& x, const torch::Tensor& out, const CallSite& site) const {
  // Two reductions per call into a preallocated device buffer (rather than isfinite + all per
  // tensor and a stack): min and max propagate NaN, and ±Inf shows as an extreme.
  if (extremes_.defined() && (extremes_.device() != x.device() || extremes_.scalar_type() != x.scalar_type())) {
    check_finite();
    extremes_ = torch::Tensor();
  }
  if (!extremes_.defined()) extremes_ = torch::empty({check_every_, 4}, x.options());
  torch::Tensor row = extremes_[static_cast<int64_t>(pending_.size())];
  torch::Tensor lo_x = row[0], hi_x = row[1], lo_d = row[2], hi_d = row[3];
  if (x.numel() > 0) at::aminmax_out(lo_x, hi_x, x);
  else row.narrow(0, 0, 2).zero_();
  if (out.numel() > 0) at::aminmax_out(lo_d, hi_d, out.scalar_type() == x.scalar_type() ? out : out.to(x.scalar_type()));
  else row.narrow(0, 2, 2).zero_();
  pending_.push_back(site);
  if (static_cast<int>(pending_.size()) >= check_every_) check_finite();
}

void Denoiser::fail_state(const CallSite& site) const {
  std::ostringstream where;
  if (site.step < 0)
    where << "the denoiser's input is NaN or Inf at sigma=" << site.sigma;
  else if (site.step == 0 && site.call == 0)
    where << "sampler " << sampler_ << ": the initial state is NaN or Inf (sigma_0=" << site.sigma << ")";
  else if (site.call == 0)
    where << "sampler " << sampler_ << ": the state became NaN or Inf in step " << site.step << " of " << steps_
          << " (it is non-finite entering step " << site.step + 1 << " at sigma=" << site.sigma << ")";
  else
    where << "sampler " << sampler_ << ": the state became NaN or Inf inside step " << site.step + 1 << " of " << steps_
          << " (before its network call at sigma=" << site.sigma << ")";
  fail(where.str(), "; every network output until then was finite (model ", model_->name(), ")");
}

void Denoiser::fail_output(const CallSite& site, bool per_sample) const {
  std::ostringstream step;
  if (site.step >= 0) step << ", step " << site.step + 1 << " of " << steps_ << " of sampler " << sampler_;
  fail("network output is NaN or Inf at sigma=", site.sigma, (per_sample ? " (per-sample sigmas)" : ""), " (model ",
       model_->name(), step.str(), ")");
}

void Denoiser::defer_checks(int every) {
  if (every < 1) fail("defer_checks: every must be >= 1, got ", every);
  check_finite();
  extremes_ = torch::Tensor();
  defer_on_cpu_ = true;
  check_every_ = every;
}

void Denoiser::begin_steps(std::string sampler, int steps) {
  sampler_ = std::move(sampler);
  steps_ = steps;
  step_ = 0;
  call_in_step_ = 0;
}

void Denoiser::step_done(int step) const {
  if (step_ < 0) return;
  step_ = step + 1;
  call_in_step_ = 0;
}

std::pair<torch::Tensor, torch::Tensor> Denoiser::with_head(const torch::Tensor& x, double sigma) const {
  if (cond_.guidance != 1.0) fail("the second-moment head cannot be combined with classifier-free guidance");
  ++nfe_;
  auto out = model_->denoise_with_head(x, {sigma}, cond_.labels);
  if (out.first.device().is_cpu() &&
      !(torch::isfinite(out.first).all().item<bool>() && torch::isfinite(out.second).all().item<bool>()))
    fail("network output is NaN or Inf at sigma=", sigma, " (model ", model_->name(), ")");
  return out;
}

void Denoiser::check_finite() const {
  if (pending_.empty()) return;
  // One device-to-host copy for all pending calls.
  const torch::Tensor all =
      extremes_.narrow(0, 0, static_cast<int64_t>(pending_.size())).to(torch::kCPU, torch::kFloat64);
  auto acc = all.accessor<double, 2>();
  for (int64_t i = 0; i < all.size(0); ++i) {
    const bool input_ok = std::isfinite(acc[i][0]) && std::isfinite(acc[i][1]);
    const bool output_ok = std::isfinite(acc[i][2]) && std::isfinite(acc[i][3]);
    if (!input_ok || !output_ok) {
      const CallSite site = pending_[i];
      pending_.clear();
      if (!input_ok) fail_state(site);
      fail_output(site, false);
    }
  }
  pending_.clear();
}

}  // namespace scoreflow
