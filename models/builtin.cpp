#include "scoreflow/builtin.h"

#include <ATen/ATen.h>

#include <cmath>

#include "mixture_posterior.h"
#include "scoreflow/args.h"
#include "scoreflow/error.h"

namespace scoreflow {
namespace {

constexpr double kPi = 3.14159265358979323846;

torch::Tensor sigma_column(const std::vector<double>& sigma, int64_t batch, int64_t dims) {
  torch::Tensor s = torch::tensor(sigma, torch::kFloat64);
  if (s.numel() == 1) s = s.expand({batch});
  std::vector<int64_t> shape(dims, 1);
  shape[0] = batch;
  return s.reshape(shape);
}

NoiseSchedule builtin_schedule(const KeyValueArgs& args) {
  std::string type = args.get_string("schedule", "edm");
  if (type == "edm") return NoiseSchedule::edm(args.get_double("sigma_min", 0.002), args.get_double("sigma_max", 80));
  if (type == "vp_discrete")
    return NoiseSchedule::vp_discrete("linear", 1e-4, 0.02, args.get_int("num_train_steps", 1000));
  if (type == "vp_linear") return NoiseSchedule::vp_linear();
  if (type == "ve") return NoiseSchedule::ve(args.get_double("sigma_min", 0.01), args.get_double("sigma_max", 50));
  fail("unknown builtin schedule '", type, "'; valid: edm, vp_discrete, vp_linear, ve");
}

std::vector<int64_t> to_shape(const std::vector<double>& v, const std::string& what) {
  std::vector<int64_t> shape;
  int64_t numel = 1;
  for (double d : v) {
    if (d < 1 || d != std::floor(d) || d > 4096) fail(what, ": shape entries must be positive integers, got ", d);
    shape.push_back(static_cast<int64_t>(d));
    numel *= shape.back();
  }
  if (shape.empty() || shape.size() > 4 || numel > (1 << 24))
    fail(what, ": shape must have 1-4 entries and < 2^24 elements");
  return shape;
}

ModelMetadata builtin_metadata(const std::vector<int64_t>& shape, const NoiseSchedule& schedule, double lo, double hi,
                               bool features = false) {
  ModelMetadata m;
  if (features) m.features = "responsibilities";
  m.prediction = Prediction::X0;
  m.schedule = schedule;
  m.time_input = TimeInput::Sigma;
  m.shape = shape;
  m.data_min = lo;
  m.data_max = hi;
  return m;
}

/// Simple coloured shapes — disk, ring, stripes, square, diagonal band, checker — one per
/// component (cycling), each with its own foreground/background colour and placement drawn from
/// `seed`: distinct, image-like means, so that a grid of samples is easy to judge by eye.
torch::Tensor pattern_means(int k, const std::vector<int64_t>& shape, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int64_t c = shape[0], h = shape[1], w = shape[2];
  torch::Tensor yy = torch::linspace(-1, 1, h, torch::kFloat64).view({h, 1}).expand({h, w});
  torch::Tensor xx = torch::linspace(-1, 1, w, torch::kFloat64).view({1, w}).expand({h, w});
  torch::Tensor means = torch::zeros({k, c, h, w}, torch::kFloat64);
  for (int i = 0; i < k; ++i) {
    torch::Tensor p = at::rand({8}, gen, torch::kFloat64);
    auto u = [&](int j) { return p[j].item<double>(); };
    const double cy = 0.5 * (u(0) - 0.5), cx = 0.5 * (u(1) - 0.5), r = 0.35 + 0.3 * u(2);
    torch::Tensor dist = ((yy - cy).pow(2) + (xx - cx).pow(2)).sqrt();
    torch::Tensor mask;
    switch (i % 6) {
      case 0:
        mask = (dist < r);
        break;
      case 1:
        mask = (dist < r) & (dist > r - 0.3);
        break;
      case 2:
        mask = torch::sin((yy * (2 + 3 * u(3))) * kPi) > 0;
        break;
      case 3:
        mask = ((yy - cy).abs() < r * 0.8) & ((xx - cx).abs() < r * 0.8);
        break;
      case 4:
        mask = (yy + xx - cy - cx).abs() < r * 0.6;
        break;
      default:
        mask = (torch::sin(yy * 2 * kPi) * torch::sin(xx * 2 * kPi)) > 0;
        break;
    }
    torch::Tensor m = mask.to(torch::kFloat64);
    for (int64_t ch = 0; ch < c; ++ch) {
      const double fg = 1.6 * at::rand({1}, gen, torch::kFloat64).item<double>() - 0.8;
      const double bg = 0.5 * at::rand({1}, gen, torch::kFloat64).item<double>() - 0.8;
      means[i][ch] = bg + (fg - bg) * m;
    }
  }
  return means.reshape({k, -1});
}

/// k points drawn uniformly from [−0.8, 0.8]^d by `seed`: a low-dimensional mixture (e.g. 2-D) whose
/// components, at the default std 0.05, are mostly well separated.
torch::Tensor point_means(int k, int64_t d, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return 1.6 * at::rand({k, d}, gen, torch::kFloat64) - 0.8;
}

}  // namespace

GaussianMixtureModel::GaussianMixtureModel(std::string name, std::string summary, torch::Tensor means,
                                           torch::Tensor variances, torch::Tensor weights, ModelMetadata metadata)
    : name_(std::move(name)),
      summary_(std::move(summary)),
      means_(means.to(torch::kFloat64).contiguous()),
      vars_(variances.to(torch::kFloat64).contiguous()),
      weights_(weights.to(torch::kFloat64)),
      meta_(std::move(metadata)) {
  if (means_.dim() != 2 || vars_.sizes() != means_.sizes() || weights_.numel() != means_.size(0))
    fail("builtin mixture: inconsistent means/variances/weights shapes");
  if (!(vars_.min().item<double>() > 0)) fail("builtin mixture: variances must be > 0");
  torch::Tensor per_component = vars_.select(1, 0);
  if (torch::equal(vars_, per_component.unsqueeze(1).expand_as(vars_)))
    isotropic_ = std::make_shared<const IsotropicMixture>(means_, per_component, weights_.log());
}

GaussianMixtureModel::Posterior GaussianMixtureModel::posterior(const torch::Tensor& x,
                                                                const std::vector<double>& sigma, bool want_mean,
                                                                bool want_resp, torch::ScalarType mean_type) const {
  const int64_t b = x.size(0);
  if (sigma.size() != 1 && static_cast<int64_t>(sigma.size()) != b)
    fail(name_, ": ", sigma.size(), " sigmas for a batch of ", b);
  const int64_t d = means_.size(1);
  if (x.numel() != b * d)
    fail(name_, ": input has ", x.numel() / std::max<int64_t>(b, 1), " values per sample, the model ", d);
  // The fast kernel has no autograd; a caller differentiating through D (the Lipschitz estimate of
  // eval wbound) gets the element-wise torch formulation below, which gives the same values.
  if (isotropic_ && !(at::GradMode::is_enabled() && x.requires_grad())) {
    std::vector<double> sigma2(sigma.size());
    for (size_t i = 0; i < sigma.size(); ++i) sigma2[i] = sigma[i] * sigma[i];
    auto r = isotropic_->posterior(x, sigma2, want_mean, want_resp, mean_type);
    return {r.log_norm, r.mean, r.resp};
  }
  // Per-element variances: element-wise over [rows, K, d] in row blocks of about 2^22 values.
  torch::Tensor xf = x.to(torch::kCPU, torch::kFloat64).reshape({b, 1, d});
  torch::Tensor s2 = sigma_column(sigma, b, 3).pow(2);  // [B, 1, 1]
  torch::Tensor mu = means_.unsqueeze(0), v = vars_.unsqueeze(0);
  const int64_t rows = std::max<int64_t>(1, (int64_t{1} << 22) / (means_.numel()));
  std::vector<torch::Tensor> log_norm, mean, resp;
  for (int64_t i = 0; i < b; i += rows) {
    const int64_t n = std::min(rows, b - i);
    torch::Tensor total = v + s2.narrow(0, i, n);  // [n, K, d]
    torch::Tensor diff = xf.narrow(0, i, n) - mu;
    torch::Tensor log_r = weights_.log().unsqueeze(0) - 0.5 * (diff.pow(2) / total + total.log()).sum(-1);  // [n, K]
    torch::Tensor lse = torch::logsumexp(log_r, 1);
    torch::Tensor r = (log_r - lse.unsqueeze(1)).exp();
    log_norm.push_back(lse);
    if (want_mean) mean.push_back((r.unsqueeze(-1) * (mu + v / total * diff)).sum(1));
    if (want_resp) resp.push_back(r);
  }
  return {torch::cat(log_norm), want_mean ? torch::cat(mean) : torch::Tensor(),
          want_resp ? torch::cat(resp) : torch::Tensor()};
}

torch::Tensor GaussianMixtureModel::denoise(const torch::Tensor& x, const std::vector<double>& sigma,
                                            const torch::Tensor&) const {
  return posterior(x, sigma, true, false, x.scalar_type()).mean.reshape(x.sizes()).to(x.device(), x.scalar_type());
}

torch::Tensor GaussianMixtureModel::features(const torch::Tensor& x, const std::vector<double>& sigma,
                                             const torch::Tensor&) const {
  if (!has_features()) Model::features(x, sigma, {});  // throws: no features
  return posterior(x, sigma, false, true).resp.to(x.device(), torch::kFloat32);
}

torch::Tensor GaussianMixtureModel::score(const torch::Tensor& x, const std::vector<double>& sigma) const {
  // Tweedie: ∇ log p_σ(x) = (E[x0|x] − x)/σ².
  torch::Tensor xd = x.to(torch::kCPU, torch::kFloat64);
  torch::Tensor s2 = sigma_column(sigma, x.size(0), x.dim()).pow(2);
  return (denoise(xd, sigma, {}) - xd) / s2;
}

torch::Tensor GaussianMixtureModel::log_prob(const torch::Tensor& x, const std::vector<double>& sigma) const {
  const int64_t d = means_.size(1);
  return posterior(x, sigma, false, false).log_norm - 0.5 * d * std::log(2 * kPi);
}

std::shared_ptr<GaussianMixtureModel> make_builtin(const std::string& spec_in) {
  std::string spec = spec_in.rfind("builtin:", 0) == 0 ? spec_in.substr(8) : spec_in;
  size_t colon = spec.find(':');
  std::string name = spec.substr(0, colon);
  KeyValueArgs args(colon == std::string::npos ? "" : spec.substr(colon + 1), "builtin arg");
  std::shared_ptr<GaussianMixtureModel> model;
  const std::string full = "builtin:" + spec;
  if (name == "gaussian") {
    // N(μ, diag(v)): std may vary linearly over elements (std_min..std_max) for a diagonal Σ.
    std::vector<int64_t> shape = to_shape(args.get_list("shape", {2}), full);
    double mean = args.get_double("mean", 0.0), std = args.get_double("std", 1.0);
    double std_min = args.get_double("std_min", std), std_max = args.get_double("std_max", std);
    if (!(std_min > 0 && std_max > 0)) fail(full, ": std must be > 0");
    int64_t d = 1;
    for (int64_t s : shape) d *= s;
    torch::Tensor stds =
        d > 1 ? torch::linspace(std_min, std_max, d, torch::kFloat64) : torch::full({1}, std_min, torch::kFloat64);
    NoiseSchedule schedule = builtin_schedule(args);
    double lo = args.get_double("lo", -1), hi = args.get_double("hi", 1);
    args.finish(full);
    std::ostringstream summary;
    summary << "Gaussian N(" << mean << ", " << (std_min == std_max ? std::to_string(std_min) + "^2 I" : "diag")
            << ") in shape " << c10::IntArrayRef(shape) << ", exact denoiser";
    model = std::make_shared<GaussianMixtureModel>(full, summary.str(), torch::full({1, d}, mean, torch::kFloat64),
                                                   stds.pow(2).reshape({1, d}), torch::ones({1}, torch::kFloat64),
                                                   builtin_metadata(shape, schedule, lo, hi));
  } else if (name == "gmm") {
    std::vector<int64_t> shape = to_shape(args.get_list("shape", {3, 32, 32}), full);
    if (shape.size() != 3 && shape.size() != 1)
      fail(full, ": gmm shape must be CxHxW (image patterns, e.g. shape=3x32x32) or D (points, e.g. shape=2)");
    int k = args.get_int("k", 8);
    double std = args.get_double("std", 0.05);
    uint64_t seed = static_cast<uint64_t>(args.get_int("seed", 0));
    const bool features = args.get_bool("features", false);
    NoiseSchedule schedule = builtin_schedule(args);
    args.finish(full);
    if (k < 1 || k > 1024 || !(std > 0)) fail(full, ": need 1 <= k <= 1024 and std > 0");
    torch::Tensor means = shape.size() == 3 ? pattern_means(k, shape, seed) : point_means(k, shape[0], seed);
    model = std::make_shared<GaussianMixtureModel>(
        full,
        std::to_string(k) + "-component Gaussian mixture of " + (shape.size() == 3 ? "image patterns" : "points") +
            ", exact denoiser",
        means, torch::full_like(means, std * std), torch::full({k}, 1.0 / k, torch::kFloat64),
        builtin_metadata(shape, schedule, -1, 1, features));
  } else if (name == "ring8") {
    double radius = args.get_double("radius", 2.0), std = args.get_double("std", 0.1);
    const bool features = args.get_bool("features", false);
    NoiseSchedule schedule = builtin_schedule(args);
    args.finish(full);
    if (!(std > 0)) fail(full, ": std must be > 0");
    torch::Tensor means = torch::zeros({8, 2}, torch::kFloat64);
    for (int i = 0; i < 8; ++i) {
      means[i][0] = radius * std::cos(2 * kPi * i / 8);
      means[i][1] = radius * std::sin(2 * kPi * i / 8);
    }
    model = std::make_shared<GaussianMixtureModel>(full, "the classic 8-Gaussians ring in 2-D, exact denoiser", means,
                                                   torch::full({8, 2}, std * std, torch::kFloat64),
                                                   torch::full({8}, 0.125, torch::kFloat64),
                                                   builtin_metadata({2}, schedule, -radius - 1, radius + 1, features));
  } else {
    std::vector<std::string> names;
    for (auto& [n, s] : builtin_models()) names.push_back(n);
    fail("unknown builtin model '", name, "'; valid: ", join(names));
  }
  return model;
}

std::vector<std::pair<std::string, std::string>> builtin_models() {
  return {
      {"gaussian", "N(mean, std^2 I) (or diagonal: std_min..std_max) in any shape; args shape=2, mean, std, schedule"},
      {"gmm",
       "mixture of k image patterns (default 3x32x32, k=8, std=0.05), writes PNG grids; shape=D (e.g. 2): "
       "k points in [-0.8, 0.8]^D; args shape, k, std, seed, features (true: posterior responsibilities as AMED "
       "features)"},
      {"ring8", "the 8-Gaussians ring in 2-D (radius 2, std 0.1); args radius, std, features"},
      {"empirical",
       "exact denoiser of a dataset's smoothed empirical distribution (memorises it); args data=PATH, limit, pad, "
       "pad_value, encoder=MODEL.pt (a latent model: its encoder's latents of the images, in its space and "
       "schedule)"}};
}

}  // namespace scoreflow
