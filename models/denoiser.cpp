#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "scoreflow/conditioning.h"
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

torch::Tensor Model::denoise_conditioned(const torch::Tensor& x, const std::vector<double>& sigma,
                                         const torch::Tensor& labels, const std::vector<torch::Tensor>& conds) const {
  if (!conds.empty()) fail("model ", name(), " takes no conditioning inputs, got ", conds.size());
  return denoise(x, sigma, labels);
}

torch::Tensor Model::stored_uncond(const std::string& cond_name) const {
  fail("model ", name(), " stores no unconditional value for condition '", cond_name, "'");
}

torch::Tensor Model::call_method(const std::string& method, const torch::Tensor&) const {
  fail("model ", name(), " has no TorchScript method '", method, "'");
}

torch::ScalarType parse_inference_dtype(const std::string& name) {
  if (name == "fp32") return torch::kFloat32;
  if (name == "fp16") return torch::kHalf;
  if (name == "bf16") return torch::kBFloat16;
  fail(Field{"dtype"}, " '", name, "' is unknown; valid: fp32, fp16, bf16");
}

std::string inference_dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32:
      return "fp32";
    case torch::kHalf:
      return "fp16";
    case torch::kBFloat16:
      return "bf16";
    default:
      return c10::toString(dtype);
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
  const auto& specs = m.conditions;
  if (cond_.guidance != 1.0 && m.num_classes == 0 && specs.empty())
    fail(Field{"guidance"}, " ", cond_.guidance, " needs a class-conditional model or conditioning inputs; ",
         model_->name(), " has num_classes 0 and no conditions");
  if (cond_.labels.defined() && m.num_classes > 0) {
    auto lo = cond_.labels.min().item<int64_t>(), hi = cond_.labels.max().item<int64_t>();
    if (lo < 0 || hi >= m.num_classes)
      fail("class label ", (lo < 0 ? lo : hi), " is outside [0, ", m.num_classes - 1, "]");
  }
  if (!(cond_.guidance_lo <= cond_.guidance_hi) || cond_.guidance_lo < 0)
    fail(Field{"guidance_interval"}, " [", cond_.guidance_lo, ", ", cond_.guidance_hi, "] must have 0 <= lo <= hi");
  if (!(cond_.rescale >= 0 && cond_.rescale <= 1))
    fail(Field{"guidance_rescale"}, " must be in [0, 1], got ", cond_.rescale);
  // Conditioning inputs: one per declared condition, [B or 1, ...shape] in the declared dtype.
  std::vector<std::string> names;
  for (const ConditionSpec& s : specs) names.push_back(s.name);
  const auto check = [&](const std::vector<torch::Tensor>& values, const char* field) {
    if (values.empty() && !specs.empty())
      fail("model ", model_->name(), " takes conditioning inputs (", join(names), "), which were not given");
    if (values.size() != specs.size())
      fail(Field{field}, " has ", values.size(), " tensors; the model declares ", specs.size(), " conditions");
    int64_t rows = 1;
    for (size_t k = 0; k < specs.size(); ++k) {
      const torch::Tensor& v = values[k];
      std::vector<int64_t> want{v.dim() > 0 ? v.size(0) : -1};
      want.insert(want.end(), specs[k].shape.begin(), specs[k].shape.end());
      if (v.dim() == 0 || v.sizes() != c10::IntArrayRef(want) || v.size(0) < 1)
        fail(Field{field}, " '", specs[k].name, "' has shape ", v.sizes(), ", expected ", table_shape_text(specs[k]));
      if (v.scalar_type() != specs[k].dtype)
        fail(Field{field}, " '", specs[k].name, "' has dtype ", c10::toString(v.scalar_type()), ", expected ",
             c10::toString(specs[k].dtype));
      if (v.size(0) != 1) {
        if (rows != 1 && v.size(0) != rows) fail(Field{field}, " tensors have different row counts");
        rows = v.size(0);
      }
    }
  };
  if (!specs.empty() || !cond_.conds.empty()) check(cond_.conds, "cond");
  if (!cond_.unconds.empty()) check(cond_.unconds, "uncond");
  if (guided() && !specs.empty() && cond_.unconds.empty()) {
    // The metadata's unconditional value, one row shared by the batch.
    if (m.uncond == UncondSource::None)
      fail(Field{"guidance"}, " ", cond_.guidance, " needs unconditional values for the conditions (", join(names),
           "): give ", Field{"uncond"}, " or declare metadata 'uncond' (zeros or stored)");
    cond_.unconds = unconditional_values(*model_);
  }
}

bool Denoiser::guided() const {
  const ModelMetadata& m = model_->metadata();
  return cond_.guidance != 1.0 && (m.num_classes > 0 || !m.conditions.empty());
}

std::vector<torch::Tensor> Denoiser::batch_conds(const std::vector<torch::Tensor>& values, int64_t b,
                                                 const torch::Device& device) const {
  std::vector<torch::Tensor> out;
  for (const torch::Tensor& v : values) {
    torch::Tensor t = v.to(device);
    if (t.size(0) == 1 && b != 1) {
      std::vector<int64_t> size(t.sizes().begin(), t.sizes().end());
      size[0] = b;
      t = t.expand(size);
    } else if (t.size(0) != b) {
      fail("denoiser: conditioning inputs have ", t.size(0), " rows for a batch of ", b);
    }
    out.push_back(t);
  }
  return out;
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
  const int64_t b = x.size(0);
  const std::vector<torch::Tensor> conds = batch_conds(cond_.conds, b, x.device());
  // Guidance interval: which samples' σ lies inside [lo, hi] (outside, D = D_c).
  std::vector<double> weight(sigma.size(), cond_.guidance);
  bool any_inside = false, all_inside = true;
  for (size_t i = 0; i < sigma.size(); ++i) {
    const bool inside = sigma[i] >= cond_.guidance_lo && sigma[i] <= cond_.guidance_hi;
    if (!inside) weight[i] = 1.0;
    any_inside |= inside;
    all_inside &= inside;
  }
  torch::Tensor out;
  if (guided() && any_inside) {
    // Classifier-free guidance: conditional and unconditional (label = num_classes, the
    // unconditional conditioning values) in one batch.
    torch::Tensor labels;
    if (num_classes > 0) {
      labels = cond_.labels.defined() ? cond_.labels.to(x.device())
                                      : torch::full({b}, num_classes, x.options().dtype(torch::kLong));
      labels = torch::cat({labels, torch::full_like(labels, num_classes)});
    }
    std::vector<torch::Tensor> both_conds;
    if (!conds.empty()) {
      const std::vector<torch::Tensor> unconds = batch_conds(cond_.unconds, b, x.device());
      for (size_t k = 0; k < conds.size(); ++k) both_conds.push_back(torch::cat({conds[k], unconds[k]}));
    }
    torch::Tensor both = model_->denoise_conditioned(
        torch::cat({x, x}), sigma.size() == 1 ? sigma : [&] {
          std::vector<double> s2(sigma);
          s2.insert(s2.end(), sigma.begin(), sigma.end());
          return s2;
        }(),
        labels, both_conds);
    auto parts = both.chunk(2);
    if (all_inside) {
      out = parts[1] + cond_.guidance * (parts[0] - parts[1]);
    } else {  // per-sample σ, some outside the interval: weight 1 there
      std::vector<int64_t> shape(x.dim(), 1);
      shape[0] = b;
      const torch::Tensor w =
          torch::tensor(weight, torch::kFloat64).to(x.device(), parts[0].scalar_type()).reshape(shape);
      out = parts[1] + w * (parts[0] - parts[1]);
    }
    if (cond_.rescale > 0) {
      // Lin et al. 2024 / diffusers rescale_noise_cfg on ε = (x − D)/σ: ε' = ε_g (φ r + 1 − φ),
      // r = std(ε_c)/std(ε_g) per sample (unbiased, over all non-batch dims). σ cancels in r, so
      // D' = x − (x − D_g)(φ r + 1 − φ). Samples outside the interval have D_g = D_c, r = 1.
      std::vector<int64_t> dims;
      for (int64_t d = 1; d < x.dim(); ++d) dims.push_back(d);
      const torch::Tensor eg = x - out, ec = x - parts[0];
      const torch::Tensor sg = eg.std(dims, /*unbiased=*/true, /*keepdim=*/true);
      const torch::Tensor sc = ec.std(dims, /*unbiased=*/true, /*keepdim=*/true);
      const torch::Tensor r = torch::where(sg > 0, sc / sg, torch::ones_like(sg));
      out = x - eg * (cond_.rescale * r + (1 - cond_.rescale));
    }
  } else {
    torch::Tensor labels = cond_.labels;
    if (num_classes > 0 && !labels.defined())
      labels = torch::full({b}, num_classes, x.options().dtype(torch::kLong));  // unconditional
    labels = labels.defined() ? labels.to(x.device()) : labels;
    out = conds.empty() ? model_->denoise(x, sigma, labels) : model_->denoise_conditioned(x, sigma, labels, conds);
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
  // Outside autograd: under a differentiated search (LD3) x and out require grad, and LibTorch >= 2
  // refuses a multi-output op writing into views of a buffer that would then be tracked.
  torch::NoGradGuard no_grad;
  torch::Tensor row = extremes_[static_cast<int64_t>(pending_.size())];
  torch::Tensor lo_x = row[0], hi_x = row[1], lo_d = row[2], hi_d = row[3];
  if (x.numel() > 0)
    at::aminmax_out(lo_x, hi_x, x.detach());
  else
    row.narrow(0, 0, 2).zero_();
  if (out.numel() > 0)
    at::aminmax_out(lo_d, hi_d, (out.scalar_type() == x.scalar_type() ? out : out.to(x.scalar_type())).detach());
  else
    row.narrow(0, 2, 2).zero_();
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
  if (!model_->metadata().conditions.empty())
    fail("the second-moment head cannot be combined with conditioning inputs (model ", model_->name(), ")");
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
