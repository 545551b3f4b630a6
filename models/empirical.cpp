#include "scoreflow/empirical.h"

#include <ATen/ATen.h>

#include <cmath>
#include <sstream>

#include "scoreflow/args.h"
#include "scoreflow/data.h"
#include "scoreflow/error.h"

namespace scoreflow {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int64_t kChunk = 4096;

torch::Tensor per_sample(const std::vector<double>& sigma, int64_t batch) {
  torch::Tensor s = torch::tensor(sigma, torch::kFloat64);
  return s.numel() == 1 ? s.expand({batch}) : s;
}

}  // namespace

EmpiricalModel::EmpiricalModel(std::string name, std::string source, torch::Tensor data, ModelMetadata metadata)
    : name_(std::move(name)), source_(std::move(source)), meta_(std::move(metadata)) {
  data_ = data.to(torch::kCPU, torch::kFloat64).reshape({data.size(0), -1}).contiguous();
  norms_ = data_.pow(2).sum(1);
}

std::string EmpiricalModel::summary() const {
  std::ostringstream os;
  os << "exact denoiser of the smoothed empirical distribution of " << data_.size(0) << " items from " << source_
     << " (memorises its data: samples reproduce training items)";
  return os.str();
}

std::pair<torch::Tensor, torch::Tensor> EmpiricalModel::stream(const torch::Tensor& x_in,
                                                               const std::vector<double>& sigma) const {
  const int64_t b = x_in.size(0);
  torch::Tensor x = x_in.to(torch::kCPU, torch::kFloat64).reshape({b, -1});
  if (x.size(1) != data_.size(1)) fail("builtin:empirical: input has ", x.size(1), " values per sample, data has ", data_.size(1));
  torch::Tensor inv2s2 = (0.5 / per_sample(sigma, b).pow(2)).unsqueeze(1);  // [B, 1]
  torch::Tensor xnorm = x.pow(2).sum(1, true);                              // [B, 1]
  // Running log-sum-exp: m (max), s = Σ exp(l − m), a = Σ exp(l − m) x_i.
  torch::Tensor m = torch::full({b, 1}, -INFINITY, torch::kFloat64);
  torch::Tensor s = torch::zeros({b, 1}, torch::kFloat64);
  torch::Tensor a = torch::zeros_like(x);
  for (int64_t begin = 0; begin < data_.size(0); begin += kChunk) {
    const int64_t n = std::min(kChunk, data_.size(0) - begin);
    torch::Tensor chunk = data_.narrow(0, begin, n);
    torch::Tensor dist2 = (xnorm - 2 * x.matmul(chunk.t()) + norms_.narrow(0, begin, n).unsqueeze(0)).clamp_min(0);
    torch::Tensor logits = -dist2 * inv2s2;                                  // [B, n]
    torch::Tensor m_new = torch::maximum(m, std::get<0>(logits.max(1, true)));
    torch::Tensor scale = torch::exp(m - m_new);
    torch::Tensor w = torch::exp(logits - m_new);
    s = s * scale + w.sum(1, true);
    a = a * scale + w.matmul(chunk);
    m = m_new;
  }
  return {(m + s.log()).squeeze(1), a / s};
}

torch::Tensor EmpiricalModel::denoise(const torch::Tensor& x, const std::vector<double>& sigma, const torch::Tensor&) const {
  return stream(x, sigma).second.reshape(x.sizes()).to(x.device(), x.scalar_type());
}

torch::Tensor EmpiricalModel::score(const torch::Tensor& x, const std::vector<double>& sigma) const {
  torch::Tensor xd = x.to(torch::kCPU, torch::kFloat64);
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  torch::Tensor s2 = per_sample(sigma, x.size(0)).pow(2).reshape(shape);
  return (stream(xd, sigma).second.reshape(x.sizes()) - xd) / s2;
}

torch::Tensor EmpiricalModel::log_prob(const torch::Tensor& x, const std::vector<double>& sigma) const {
  const double d = static_cast<double>(data_.size(1));
  torch::Tensor sig = per_sample(sigma, x.size(0));
  return stream(x, sigma).first - std::log(static_cast<double>(data_.size(0))) - d * (0.5 * std::log(2 * kPi) + sig.log());
}

std::shared_ptr<EmpiricalModel> make_empirical(const std::string& spec_in) {
  std::string spec = spec_in.rfind("builtin:", 0) == 0 ? spec_in.substr(8) : spec_in;
  size_t colon = spec.find(':');
  KeyValueArgs args(colon == std::string::npos ? "" : spec.substr(colon + 1), "builtin arg");
  const std::string full = "builtin:" + spec;
  std::string path = args.get_string("data", "");
  const int limit = args.get_int("limit", 0);
  const std::string schedule = args.get_string("schedule", "edm");
  const double lo = args.get_double("lo", -1), hi = args.get_double("hi", 1);
  const int pad = args.get_int("pad", 0);  // a model's data_prep pad, e.g. pad=2 for models/fashion_ddpm.pt
  const double pad_value = args.get_double("pad_value", lo);
  args.finish(full);
  if (path.empty()) fail(full, ": give the dataset, e.g. builtin:empirical:data=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz,limit=1000");
  io::DatasetOptions opts;
  opts.lo = lo;
  opts.hi = hi;
  auto dataset = io::open_dataset(path, opts);
  if (pad != 0) {
    const std::vector<int64_t> s = dataset->shape();
    opts.shape = {s[0], s[1] + 2 * pad, s[2] + 2 * pad};
    opts.prep.pad_top = opts.prep.pad_bottom = opts.prep.pad_left = opts.prep.pad_right = pad;
    opts.prep.pad_value = pad_value;
    dataset = io::open_dataset(path, opts);
  }
  int64_t n = dataset->size();
  if (limit > 0) n = std::min<int64_t>(n, limit);
  if (n < 1) fail(full, ": the dataset is empty");
  ModelMetadata meta;
  meta.prediction = Prediction::X0;
  if (schedule == "edm") meta.schedule = NoiseSchedule::edm();
  else if (schedule == "vp_discrete") meta.schedule = NoiseSchedule::vp_discrete("linear", 1e-4, 0.02, 1000);
  else if (schedule == "vp_linear") meta.schedule = NoiseSchedule::vp_linear();
  else if (schedule == "ve") meta.schedule = NoiseSchedule::ve();
  else fail("unknown builtin schedule '", schedule, "'; valid: edm, vp_discrete, vp_linear, ve");
  meta.time_input = TimeInput::Sigma;
  meta.shape = dataset->shape();
  meta.data_min = lo;
  meta.data_max = hi;
  return std::make_shared<EmpiricalModel>(full, dataset->describe(), dataset->batch(0, n), meta);
}

}  // namespace scoreflow
