#include "scoreflow/empirical.h"

#include <ATen/ATen.h>

#include <cmath>
#include <sstream>

#include "mixture_posterior.h"
#include "scoreflow/args.h"
#include "scoreflow/data.h"
#include "scoreflow/error.h"
#include "scoreflow/latent.h"

namespace scoreflow {
namespace {

constexpr double kPi = 3.14159265358979323846;

torch::Tensor per_sample(const std::vector<double>& sigma, int64_t batch) {
  torch::Tensor s = torch::tensor(sigma, torch::kFloat64);
  return s.numel() == 1 ? s.expand({batch}) : s;
}

}  // namespace

EmpiricalModel::EmpiricalModel(std::string name, std::string source, torch::Tensor data, ModelMetadata metadata)
    : name_(std::move(name)), source_(std::move(source)), meta_(std::move(metadata)) {
  torch::Tensor rows = data.to(torch::kCPU, torch::kFloat64).reshape({data.size(0), -1});
  const int64_t n = rows.size(0);
  // p_σ is the mixture (1/N) Σ_i N(x^(i), σ² I): components of variance 0 and weight 1/N.
  mixture_ = std::make_shared<const IsotropicMixture>(
      rows, torch::zeros({n}, torch::kFloat64), torch::full({n}, -std::log(static_cast<double>(n)), torch::kFloat64));
}

torch::Tensor EmpiricalModel::data() const { return mixture_->means(); }

std::string EmpiricalModel::summary() const {
  std::ostringstream os;
  os << "exact denoiser of the smoothed empirical distribution of " << mixture_->components() << " items from "
     << source_ << " (memorises its data: samples reproduce training items)";
  return os.str();
}

std::pair<torch::Tensor, torch::Tensor> EmpiricalModel::stream(const torch::Tensor& x, const std::vector<double>& sigma,
                                                               bool want_mean, torch::ScalarType mean_type) const {
  const int64_t b = x.size(0), d = mixture_->dims();
  if (x.numel() != b * d)
    fail("builtin:empirical: input has ", x.numel() / std::max<int64_t>(b, 1), " values per sample, data has ", d);
  if (sigma.size() != 1 && static_cast<int64_t>(sigma.size()) != b)
    fail("builtin:empirical: ", sigma.size(), " sigmas for a batch of ", b);
  std::vector<double> sigma2(sigma.size());
  for (size_t i = 0; i < sigma.size(); ++i) sigma2[i] = sigma[i] * sigma[i];
  auto r = mixture_->posterior(x, sigma2, want_mean, false, mean_type);
  return {r.log_norm, r.mean};
}

torch::Tensor EmpiricalModel::denoise(const torch::Tensor& x, const std::vector<double>& sigma,
                                      const torch::Tensor&) const {
  return stream(x, sigma, true, x.scalar_type()).second.reshape(x.sizes()).to(x.device(), x.scalar_type());
}

torch::Tensor EmpiricalModel::score(const torch::Tensor& x, const std::vector<double>& sigma) const {
  torch::Tensor xd = x.to(torch::kCPU, torch::kFloat64);
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  torch::Tensor s2 = per_sample(sigma, x.size(0)).pow(2).reshape(shape);
  return (stream(xd, sigma, true).second.reshape(x.sizes()) - xd) / s2;
}

torch::Tensor EmpiricalModel::log_prob(const torch::Tensor& x, const std::vector<double>& sigma) const {
  // log_norm = log (1/N) Σ_i σ^{-d} exp(−‖x − x_i‖²/2σ²); add the 2π factor.
  const double d = static_cast<double>(mixture_->dims());
  return stream(x, sigma, false).first - 0.5 * d * std::log(2 * kPi);
}

namespace {

NoiseSchedule builtin_schedule(const std::string& schedule) {
  if (schedule == "edm") return NoiseSchedule::edm();
  if (schedule == "vp_discrete") return NoiseSchedule::vp_discrete("linear", 1e-4, 0.02, 1000);
  if (schedule == "vp_linear") return NoiseSchedule::vp_linear();
  if (schedule == "ve") return NoiseSchedule::ve();
  fail("unknown builtin schedule '", schedule, "'; valid: edm, vp_discrete, vp_linear, ve");
}

/// The empirical distribution of a dataset's latents: the images are read and encoded as the
/// latent model in `encoder` reads data (open_model_dataset: its data_prep, the decoder's image
/// shape and range, its encoder method, scale and shift included). Shape, range and, unless
/// schedule= is given, the schedule are the latent model's.
std::shared_ptr<EmpiricalModel> make_encoded_empirical(const std::string& full, const KeyValueArgs& args,
                                                       const std::string& path, int limit, const std::string& encoder) {
  for (const char* key : {"lo", "hi", "pad", "pad_value"})
    if (args.has(key))
      fail(full, ": ", key, " is not used with encoder=: the images are read as ", encoder,
           " reads them (its data_prep and decoder image_range)");
  std::shared_ptr<const Model> latent = open_model(encoder);
  if (latent->metadata().encoder.empty())
    fail(full, ": encoder archive '", encoder, "' has no metadata 'encoder' (a method mapping images to latents)");
  auto dataset = open_model_dataset(path, latent);
  int64_t n = dataset->size();
  if (limit > 0) n = std::min<int64_t>(n, limit);
  if (n < 1) fail(full, ": the dataset is empty");
  const ModelMetadata& m = latent->metadata();
  ModelMetadata meta;
  meta.prediction = Prediction::X0;
  meta.schedule = args.has("schedule") ? builtin_schedule(args.get_string("schedule", "edm")) : m.schedule;
  meta.time_input = TimeInput::Sigma;
  meta.shape = m.shape;
  meta.data_min = m.data_min;
  meta.data_max = m.data_max;
  return std::make_shared<EmpiricalModel>(full, dataset->describe(), dataset->batch(0, n), meta);
}

}  // namespace

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
  const std::string encoder = args.get_string("encoder", "");
  args.finish(full);
  if (path.empty())
    fail(full,
         ": give the dataset, e.g. "
         "builtin:empirical:data=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz,limit=1000");
  if (!encoder.empty()) return make_encoded_empirical(full, args, path, limit, encoder);
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
  meta.schedule = builtin_schedule(schedule);
  meta.time_input = TimeInput::Sigma;
  meta.shape = dataset->shape();
  meta.data_min = lo;
  meta.data_max = hi;
  return std::make_shared<EmpiricalModel>(full, dataset->describe(), dataset->batch(0, n), meta);
}

}  // namespace scoreflow
