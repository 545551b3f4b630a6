// Training the AMED predictor (Zhou et al., CVPR 2024, Sec. 4.2 and the authors' training loop):
// teacher trajectories on the refined grid from fresh noise, then one student step at a time with
// the loss ‖x_stu(n+1) − x_tea(n+1)‖² and an Adam step per student step.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>

#include "samplers/amed_predictor.h"
#include "samplers/amed_steps.h"
#include "scoreflow/amed.h"
#include "scoreflow/error.h"
#include "scoreflow/fingerprint.h"

namespace scoreflow {

void check_amed_pair(const std::string& student, const std::string& teacher) {
  static const std::vector<std::pair<std::string, std::string>> pairs = {
      {"amed", "heun"}, {"euler", "heun"}, {"ipndm", "ipndm"}, {"dpmpp_2m", "dpmpp_2m"}};
  for (const auto& [s, t] : pairs)
    if (s == student && t == teacher) return;
  ErrorMessage m;
  m << "AMED does not define " << Field{"student"} << " '" << student << "' with " << Field{"teacher"} << " '"
    << teacher << "'; valid:";
  for (size_t i = 0; i < pairs.size(); ++i)
    m << (i ? ", " : " ") << Field{"student"} << " " << pairs[i].first << " " << Field{"teacher"} << " "
      << pairs[i].second;
  m.raise();
}

std::vector<double> refine_sigmas_log(const std::vector<double>& sigmas, int M) {
  if (M < 0) fail("M must be >= 0, got ", M);
  std::vector<double> fine;
  const size_t positive = !sigmas.empty() && sigmas.back() == 0 ? sigmas.size() - 1 : sigmas.size();
  for (size_t i = 0; i + 1 < positive; ++i)
    for (int j = 0; j <= M; ++j)
      fine.push_back(std::exp(std::log(sigmas[i]) + (std::log(sigmas[i + 1]) - std::log(sigmas[i])) * j / (M + 1)));
  if (positive > 0) fine.push_back(sigmas[positive - 1]);
  return fine;
}

namespace {

/// The student step's output as a function of the predictor's outputs with exact values and
/// gradients: x' = A(r, a) + c·B(r, a). The frozen network is not differentiated (TorchScript models
/// run under NoGradGuard); ∂A/∂r, ∂B/∂r (and ∂/∂a when a is learned) come from a forward difference
/// of the whole interval, one extra model call each, and enter as (r − sg(r))·∂A/∂r.
torch::Tensor differentiable_step(const amed::Base& base, const Denoiser& denoise, const torch::Tensor& x,
                                  const torch::Tensor& d, double sigma, double sigma_next, const torch::Tensor& r,
                                  const torch::Tensor& c, const torch::Tensor& a, bool learn_a,
                                  const amed::History& history, bool last, amed::Interval& step) {
  auto host = [](const torch::Tensor& t) {
    torch::Tensor h = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
    return std::vector<double>(h.data_ptr<double>(), h.data_ptr<double>() + h.numel());
  };
  auto col = [&](const torch::Tensor& t) {
    std::vector<int64_t> shape(x.dim(), 1);
    shape[0] = t.size(0);
    return t.to(x.scalar_type()).reshape(shape);
  };
  const std::vector<double> r0 = host(r), a0 = host(a);
  step = base.interval(denoise, x, d, sigma, sigma_next, r0, a0, history, last);
  torch::Tensor A = step.A, B = step.B;
  constexpr double eps = 1e-3;
  std::vector<double> r1 = r0, sign(r0.size(), 1.0);
  for (size_t i = 0; i < r1.size(); ++i) {
    if (r0[i] + eps > 1) sign[i] = -1;  // stay inside [0, 1]
    r1[i] = r0[i] + sign[i] * eps;
  }
  amed::Interval dr = base.interval(denoise, x, d, sigma, sigma_next, r1, a0, history, last);
  torch::Tensor k_r = amed::column(sign, x) / eps;
  torch::Tensor delta_r = col(r - r.detach());
  A = A + delta_r * (dr.A - step.A) * k_r;
  B = B + delta_r * (dr.B - step.B) * k_r;
  if (learn_a) {
    std::vector<double> a1 = a0;
    for (double& v : a1) v += eps;
    amed::Interval da = base.interval(denoise, x, d, sigma, sigma_next, r0, a1, history, last);
    torch::Tensor delta_a = col(a - a.detach());
    A = A + delta_a * (da.A - step.A) / eps;
    B = B + delta_a * (da.B - step.B) / eps;
  }
  return A + col(c) * B;
}

/// The teacher's grid: options.teacher_sigmas, or M log-uniform points per student interval; checked
/// to nest the student's grid.
std::vector<double> teacher_grid(const AmedTrainOptions& o, int intervals) {
  const std::vector<double>& sigmas = o.sigmas;
  const std::vector<double> fine = o.teacher_sigmas.empty() ? refine_sigmas_log(sigmas, o.M) : o.teacher_sigmas;
  if (fine.size() != size_t(intervals) * (o.M + 1) + 1)
    fail("teacher grid has ", fine.size(), " points; ", intervals, " intervals with M=", o.M, " need ",
         intervals * (o.M + 1) + 1);
  for (int n = 0; n <= intervals; ++n)
    if (std::abs(fine[n * (o.M + 1)] - sigmas[n]) > 1e-9 * sigmas[n])
      fail("teacher grid point ", n * (o.M + 1), " is ", fine[n * (o.M + 1)], ", not the student's sigma ", sigmas[n]);
  return fine;
}

/// Intervals between the grid's positive σ.
int positive_intervals(const std::vector<double>& sigmas) {
  const size_t positive = !sigmas.empty() && sigmas.back() == 0 ? sigmas.size() - 1 : sigmas.size();
  if (positive < 2) fail("AMED training needs a grid with at least 2 positive sigmas (", Field{"steps"}, " >= 2)");
  return static_cast<int>(positive) - 1;
}

}  // namespace

AmedPredictor train_amed(std::shared_ptr<const Model> model, const AmedTrainOptions& o,
                         const AmedLossCallback& on_step) {
  check_amed_pair(o.student, o.teacher);
  const amed::Base& base = amed::find_base(o.student, "student");
  if (o.M < 1) fail(Field{"M"}, " must be >= 1, got ", o.M);
  if (o.batch < 1) fail(Field{"batch"}, " must be >= 1, got ", o.batch);
  if (o.num_trajectories < 1) fail(Field{"num_trajectories"}, " must be >= 1, got ", o.num_trajectories);
  if (!(o.lr > 0)) fail(Field{"lr"}, " must be > 0, got ", o.lr);
  if (!(o.scale_dir >= 0 && o.scale_dir < 1)) fail(Field{"scale_dir"}, " must be in [0, 1), got ", o.scale_dir);
  if (!(o.scale_time >= 0 && o.scale_time < 1)) fail(Field{"scale_time"}, " must be in [0, 1), got ", o.scale_time);
  const std::vector<double>& sigmas = o.sigmas;
  const int intervals = positive_intervals(sigmas);
  if ((o.final == FinalStep::Zero) != (sigmas.back() == 0))
    fail("AMED training with final '", final_step_name(o.final), "' needs a grid ending ",
         o.final == FinalStep::Zero ? "in 0" : "at sigma_min > 0", "; this one ends at ", sigmas.back());
  const std::vector<double> fine = teacher_grid(o, intervals);

  const torch::Device device = model->device();
  const auto& shape = model->metadata().shape;
  // Feature mode when the model exposes its bottleneck; the width F is read off one call.
  AmedRecord record;
  record.student = o.student;
  record.teacher = o.teacher;
  record.steps = static_cast<int>(sigmas.size()) - 1;
  record.final = o.final;
  record.M = o.M;
  record.afs = o.afs;
  record.scale_dir = o.scale_dir;
  record.scale_time = o.scale_time;
  record.features = model->has_features();
  record.sigmas = sigmas;
  record.schedule = model->metadata().schedule.describe();
  record.model = model->name();
  record.model_hash = model_fingerprint(*model);
  record.schedule_name = o.schedule_name;
  std::vector<int64_t> one_shape{1};
  one_shape.insert(one_shape.end(), shape.begin(), shape.end());
  if (record.features)
    record.feature_dim = static_cast<int>(model->features(torch::zeros(one_shape).to(device), {sigmas[0]}, {}).size(1));

  torch::manual_seed(o.seed);
  AmedPredictor predictor(record);
  predictor.to(device);
  AmedNet& net = *static_cast<AmedNet*>(predictor.net().get());
  net->train();
  torch::optim::Adam adam(net->parameters(), torch::optim::AdamOptions(o.lr).betas({0.9, 0.999}).eps(1e-8));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);

  const int64_t batches = (o.num_trajectories + o.batch - 1) / o.batch;
  for (int64_t bi = 0; bi < batches; ++bi) {
    const int64_t b = std::min<int64_t>(o.batch, o.num_trajectories - bi * o.batch);
    std::vector<int64_t> batch_shape{b};
    batch_shape.insert(batch_shape.end(), shape.begin(), shape.end());
    torch::Tensor x = (at::randn(batch_shape, gen, torch::kFloat32) * sigmas[0]).to(device);
    // Conditioned models: trajectory i's conditioning (and guidance) from the caller.
    Denoiser denoise(model, o.conditioning ? o.conditioning(bi * o.batch, b) : Conditioning{});
    std::vector<torch::Tensor> teacher;
    {
      torch::NoGradGuard no_grad;
      teacher = amed::teacher_states(o.teacher, denoise, x, fine, o.M + 1);
    }
    amed::History history;
    for (int n = 0; n < intervals; ++n) {
      const double sigma = sigmas[n], sigma_next = sigmas[n + 1];
      const bool analytic = o.afs && n == 0;
      torch::Tensor d, f;
      {
        torch::NoGradGuard no_grad;
        d = amed::first_derivative(denoise, x, sigma, analytic);
        f = record.features && !analytic ? model->features(x, {sigma}, {})
                                         : torch::zeros({b, record.feature_dim}, torch::TensorOptions().device(device));
      }
      auto [r, c, a] = predictor.forward(f, sigma, sigma_next);
      amed::Interval step;
      torch::Tensor x_student = differentiable_step(base, denoise, x, d, sigma, sigma_next, r, c, a, o.scale_time > 0,
                                                    history, n == intervals - 1, step);
      torch::Tensor loss = (x_student - teacher[n]).pow(2).flatten(1).sum(1).mean();
      adam.zero_grad();
      loss.backward();
      for (torch::Tensor& p : net->parameters())
        if (p.grad().defined()) p.grad().nan_to_num_(0, 1e5, -1e5);
      adam.step();
      if (on_step) on_step(bi, n, loss.item<double>());
      base.push_history(history, x, d, sigma, step);
      x = base.multistep() ? x_student.detach() : teacher[n];
    }
    denoise.check_finite();
  }
  net->eval();
  predictor.record().trajectories = o.num_trajectories;
  predictor.record().seed = o.seed;
  return predictor;
}

double amed_validation_rms(std::shared_ptr<const Model> model, const AmedTrainOptions& o,
                           const AmedPredictor& predictor, int64_t num, uint64_t seed) {
  if (num < 1) fail("validation needs at least 1 trajectory, got ", num);
  predictor.check_compatible(*model, o.sigmas);  // the same refusals as sampling with it
  const amed::Base& base = amed::find_base(o.student, "student");
  const int intervals = positive_intervals(o.sigmas);
  const std::vector<double> fine = teacher_grid(o, intervals);
  const AmedRecord& record = predictor.record();
  if (record.features != model->has_features())
    fail("the predictor was trained ", record.features ? "with" : "without", " the model's features");
  torch::NoGradGuard no_grad;
  const torch::Device device = model->device();
  const auto& shape = model->metadata().shape;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  double sum = 0;
  const int64_t batch = std::max<int64_t>(1, o.batch);
  for (int64_t done = 0; done < num; done += batch) {
    const int64_t b = std::min<int64_t>(batch, num - done);
    std::vector<int64_t> batch_shape{b};
    batch_shape.insert(batch_shape.end(), shape.begin(), shape.end());
    torch::Tensor x = (at::randn(batch_shape, gen, torch::kFloat32) * o.sigmas[0]).to(device);
    Denoiser denoise(model, o.conditioning ? o.conditioning(done, b) : Conditioning{});
    torch::Tensor teacher = amed::teacher_states(o.teacher, denoise, x, fine, o.M + 1).back();
    torch::Tensor student = amed::solve(
        base, denoise, x, o.sigmas, intervals, o.afs,
        [&](int, const torch::Tensor& xi, double sigma, double sigma_next, bool analytic) {
          torch::Tensor f = record.features && !analytic
                                ? model->features(xi, {sigma}, {})
                                : torch::zeros({b, record.feature_dim}, torch::TensorOptions().device(device));
          return predictor.predict(f, sigma, sigma_next);
        });
    sum += (student - teacher).to(torch::kFloat64).pow(2).flatten(1).sum().item<double>();
    denoise.check_finite();
  }
  return std::sqrt(sum / static_cast<double>(num));
}

}  // namespace scoreflow
