// ExactTarget: the data distribution with a closed-form denoiser (empirical or analytic), and
// loading point/image datasets as rows.
#include <ATen/ATen.h>

#include <cmath>
#include <sstream>

#include "models/sizes_text.h"
#include "scoreflow/builtin.h"
#include "scoreflow/data.h"
#include "scoreflow/empirical.h"
#include "scoreflow/error.h"
#include "scoreflow/latent.h"
#include "scoreflow/model_data.h"
#include "scoreflow/npy.h"
#include "scoreflow/score_matching.h"

namespace scoreflow::eval {
namespace {

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

/// A float point array from .npy / .npz (key "samples", "data", "arr_0" or the only one), or an
/// undefined tensor when the file holds images (uint8) and should go through open_dataset.
torch::Tensor read_float_points(const std::string& path) {
  io::NpyArray array;
  if (ends_with(path, ".npy")) {
    array = io::read_npy(path);
  } else {
    auto arrays = io::read_npz(path);
    std::vector<std::string> keys;
    for (auto& [k, v] : arrays) keys.push_back(k);
    const char* preferred[] = {"samples", "data", "arr_0"};
    auto it = arrays.end();
    for (const char* k : preferred)
      if ((it = arrays.find(k)) != arrays.end()) break;
    if (it == arrays.end() && arrays.size() == 1) it = arrays.begin();
    if (it == arrays.end()) return {};  // let open_dataset pick "images" or explain
    array = it->second;
  }
  if (array.dtype != "<f4" && array.dtype != "<f8" && array.dtype != "<f2") return {};
  return io::to_tensor(array);
}

}  // namespace

torch::Tensor load_data_rows(const std::string& path, const ModelMetadata& like, int64_t limit) {
  const int64_t d = numel_of(like.shape);
  torch::Tensor rows;
  if (ends_with(path, ".npy") || ends_with(path, ".npz")) {
    torch::Tensor t = read_float_points(path);
    if (t.defined()) {
      if (t.dim() < 2 || t.size(0) < 1)
        fail("data '", path, "': expected [N, ...shape] points, got shape ", sizes_text(t.sizes()));
      const int64_t per = t.numel() / t.size(0);
      if (per != d)
        fail("data '", path, "' holds items of shape ", sizes_text(t.sizes().slice(1)), " (", per,
             " values) but the model's samples are ", sizes_text(like.shape), " (", d, " values)");
      rows = t.reshape({t.size(0), d}).to(torch::kFloat64);
    }
  }
  if (!rows.defined()) {
    if (like.shape.size() != 3)
      fail("data '", path, "': an image dataset needs an image-shaped model [C, H, W]; this model's shape is ",
           sizes_text(like.shape), " (give a float .npy of points [N, ", d, "])");
    auto dataset = io::open_dataset(path, dataset_options(like));  // shape, range and data_prep
    int64_t n = dataset->size();
    if (limit > 0) n = std::min(n, limit);
    rows = dataset->batch(0, n).reshape({n, d}).to(torch::kFloat64);
  }
  if (limit > 0 && rows.size(0) > limit) rows = rows.narrow(0, 0, limit);
  if (rows.size(0) < 1) fail("data '", path, "' is empty");
  if (!torch::isfinite(rows).all().item<bool>()) fail("data '", path, "' holds NaN or Inf values");
  return rows.contiguous();
}

torch::Tensor load_data_rows(const std::string& path, std::shared_ptr<const Model> model, int64_t limit) {
  if (model->metadata().encoder.empty()) return load_data_rows(path, model->metadata(), limit);
  auto dataset = open_model_dataset(path, model);
  int64_t n = dataset->size();
  if (limit > 0) n = std::min(n, limit);
  if (n < 1) fail("data '", path, "' is empty");
  return dataset->batch(0, n).reshape({n, -1}).to(torch::kFloat64).contiguous();
}

ExactTarget::ExactTarget(const std::string& data, std::shared_ptr<const Model> model, int64_t limit)
    : ExactTarget(data, model->metadata(), limit, load_rows_for(data, model, limit)) {}

ExactTarget::ExactTarget(const std::string& data, const ModelMetadata& like, int64_t limit)
    : ExactTarget(data, like, limit, torch::Tensor()) {}

torch::Tensor ExactTarget::load_rows_for(const std::string& data, const std::shared_ptr<const Model>& model,
                                         int64_t limit) {
  if (data.rfind("builtin:", 0) == 0 || model->metadata().encoder.empty()) return {};
  return load_data_rows(data, model, limit);
}

ExactTarget::ExactTarget(const std::string& data, const ModelMetadata& like, int64_t limit, torch::Tensor rows) {
  dim_ = numel_of(like.shape);
  if (data.rfind("builtin:", 0) == 0) {
    if (data.rfind("builtin:empirical", 0) == 0)
      fail(Field{"data"}, " ", data,
           ": give the dataset path itself; its smoothed empirical distribution is the target");
    auto mixture = make_builtin(data);
    if (numel_of(mixture->metadata().shape) != dim_)
      fail(Field{"data"}, " ", data, " has samples of shape ", sizes_text(mixture->metadata().shape),
           " but the model's are ", sizes_text(like.shape));
    means_ = mixture->means();
    variances_ = mixture->variances();
    weights_ = mixture->weights();
    describe_ = data + " (" + mixture->summary() + ")";
    model_ = mixture;
    return;
  }
  data_rows_ = rows.defined() ? rows : load_data_rows(data, like, limit);
  ModelMetadata meta = like;
  meta.prediction = Prediction::X0;
  meta.head = Head::None;
  meta.num_classes = 0;
  meta.features.clear();
  // The oracle is the data's own (unconditional) distribution in the model's space.
  meta.conditions.clear();
  meta.uncond = UncondSource::None;
  meta.decoder.reset();
  meta.encoder.clear();
  std::vector<int64_t> shape{data_rows_.size(0)};
  shape.insert(shape.end(), like.shape.begin(), like.shape.end());
  auto empirical = std::make_shared<EmpiricalModel>("empirical:" + data, data, data_rows_.reshape(shape), meta);
  describe_ = "smoothed empirical distribution of " + std::to_string(data_rows_.size(0)) + " items of " + data;
  model_ = empirical;
}

torch::Tensor ExactTarget::sample(int64_t n, at::Generator& gen, torch::Tensor* items) const {
  if (items) *items = torch::Tensor();
  if (data_rows_.defined()) {
    const int64_t size = data_rows_.size(0);
    torch::Tensor idx =
        n <= size ? at::randperm(size, gen, torch::kLong).narrow(0, 0, n) : at::randint(size, {n}, gen, torch::kLong);
    if (items) *items = idx;
    return data_rows_.index_select(0, idx);
  }
  torch::Tensor k = at::multinomial(weights_, n, true, gen);
  torch::Tensor z = at::randn({n, dim_}, gen, torch::kFloat64);
  return means_.index_select(0, k) + variances_.index_select(0, k).sqrt() * z;
}

torch::Tensor ExactTarget::denoise(const torch::Tensor& x, double sigma) const {
  std::vector<int64_t> shape{x.size(0)};
  const auto& s = model_->metadata().shape;
  shape.insert(shape.end(), s.begin(), s.end());
  torch::Tensor xd = x.detach().to(torch::kCPU, torch::kFloat64).reshape(shape);
  return model_->denoise(xd, {sigma}, {}).reshape({x.size(0), dim_});
}

bool ExactTarget::gaussian(torch::Tensor* mean, torch::Tensor* cov) const {
  if (data_rows_.defined() || means_.size(0) != 1) return false;
  if (mean) *mean = means_[0].clone();
  if (cov) *cov = torch::diag(variances_[0]);
  return true;
}

std::pair<torch::Tensor, torch::Tensor> ExactTarget::moments() const {
  if (data_rows_.defined()) {
    torch::Tensor mu = data_rows_.mean(0);
    torch::Tensor c = data_rows_ - mu;
    const int64_t n = data_rows_.size(0);
    return {mu, c.t().matmul(c) / static_cast<double>(std::max<int64_t>(n - 1, 1))};
  }
  // Mixture: Σ π_k (diag v_k + μ_k μ_kᵀ) − μ μᵀ.
  torch::Tensor mu = weights_.matmul(means_);
  torch::Tensor second = torch::diag(weights_.matmul(variances_)) + means_.t().matmul(weights_.unsqueeze(1) * means_);
  return {mu, second - torch::outer(mu, mu)};
}

std::vector<double> evaluation_sigmas(const NoiseSchedule& schedule, int k) {
  if (k < 1) fail(Field{"timesteps"}, " must be >= 1, got ", k);
  std::vector<double> sigmas;
  if (schedule.type() == ScheduleType::VpDiscrete) {
    const int n = schedule.num_train_steps();
    if (k > n) fail(Field{"timesteps"}, " ", k, " exceeds the model's ", n, " discrete timesteps");
    for (int i = 0; i < k; ++i) {
      const int index =
          k == 1 ? n - 1 : static_cast<int>(std::lround((n - 1) * (1.0 - static_cast<double>(i) / (k - 1))));
      sigmas.push_back(schedule.discrete_sigmas()[index]);
    }
    return sigmas;
  }
  const double lo = std::log(schedule.sigma_min()), hi = std::log(schedule.sigma_max());
  for (int i = 0; i < k; ++i) sigmas.push_back(std::exp(k == 1 ? hi : hi + (lo - hi) * i / (k - 1)));
  return sigmas;
}

std::vector<double> network_times(const NoiseSchedule& schedule, const std::vector<double>& sigmas) {
  std::vector<double> t;
  for (double s : sigmas) t.push_back(schedule.t_of_sigma(s));
  return t;
}

}  // namespace scoreflow::eval
