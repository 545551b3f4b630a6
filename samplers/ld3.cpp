/// LD3's search (Tong et al., ICLR 2025, Algorithm 1 with the L2 loss): teacher targets, Adam on the
/// grid parameters through the differentiable student, the relaxed objective's projected noise steps,
/// validation and the best grid, with resumable checkpoints (include/scoreflow/ld3.h).
#include "scoreflow/ld3.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>
#include <numeric>
#include <random>
#include <string>

#include "scoreflow/error.h"

namespace scoreflow {

torch::Tensor ld3_grid(const torch::Tensor& xi, double sigma_max, double sigma_min, FinalStep final) {
  if (!(sigma_min > 0) || !(sigma_max > sigma_min) || !std::isfinite(sigma_max))
    fail("LD3: the grid needs sigma_max > sigma_min > 0, got ", sigma_max, " and ", sigma_min);
  if (xi.dim() != 1 || xi.size(0) < 1) fail("LD3: the step parameters must be [N] with N >= 1, got ", xi.sizes());
  const int64_t n = xi.size(0);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(xi.device());
  // u on the simplex: Σ_{k<i} u_k < 1 for i < N, so every inner point lies strictly inside (σ_min, σ_max).
  const torch::Tensor u = torch::softmax(xi.to(torch::kFloat64), 0);
  const torch::Tensor cum = torch::cumsum(u, 0).narrow(0, 0, n - 1);
  const torch::Tensor inner = torch::exp(std::log(sigma_max) - std::log(sigma_max / sigma_min) * cum);
  // The endpoints exactly (exp(log σ) need not round back to σ).
  return torch::cat(
      {torch::full({1}, sigma_max, f64), inner, torch::full({1}, final == FinalStep::Zero ? 0.0 : sigma_min, f64)});
}

namespace {

/// LD3's L2 loss per sample: the mean squared difference over its elements, float64 [B].
torch::Tensor per_sample_mse(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).to(torch::kFloat64).pow(2).flatten(1).mean(1);
}

/// The order in which epoch `epoch` visits n training samples: Fisher–Yates on mt19937_64 (whose
/// output the standard fixes), seeded by (seed, epoch), so a resumed run draws the same batches.
std::vector<int64_t> epoch_order(uint64_t seed, int64_t epoch, int64_t n) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) + 1);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng() % static_cast<uint64_t>(i + 1)]);
  return order;
}

std::vector<double> to_vector(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

void check_options(const Ld3Student& student, const Sampler& teacher, const Ld3Options& o) {
  const std::vector<double>& t = o.teacher_sigmas;
  if (teacher.stochastic()) fail("LD3 learns grids for ODE solvers; the teacher ", teacher.name(), " is stochastic");
  if (t.size() < 2 || (t.back() == 0 && t.size() < 3))
    fail(Field{"teacher"}, " grid needs at least two positive sigmas, got ", t.size(), " points");
  for (size_t i = 0; i + 1 < t.size(); ++i)
    if (!(t[i] > 0) || !std::isfinite(t[i]) || !(t[i + 1] < t[i]) || t[i + 1] < 0)
      fail(Field{"teacher"}, " grid not strictly decreasing and positive at position ", i, " (", t[i], ", ", t[i + 1],
           ")");
  if (o.final == FinalStep::Denoise) fail(Field{"final"}, " denoise is not searched by LD3; valid: zero, none");
  const Sampler& s = student.sampler();
  if (o.steps < std::max(1, s.min_steps()))
    fail(Field{"steps"}, " = ", o.steps, " is below ", s.name(), "'s minimum ", std::max(1, s.min_steps()));
  if (o.train_samples < 1) fail(Field{"train_samples"}, " must be >= 1, got ", o.train_samples);
  if (o.valid_samples < 1) fail(Field{"valid_samples"}, " must be >= 1, got ", o.valid_samples);
  if (o.iterations < 0) fail(Field{"iterations"}, " must be >= 0, got ", o.iterations);
  if (o.train_batch < 1) fail(Field{"train_batch"}, " must be >= 1, got ", o.train_batch);
  if (!(o.lr > 0) || !std::isfinite(o.lr)) fail(Field{"lr"}, " must be > 0, got ", o.lr);
  if (!std::isfinite(o.ball)) fail(Field{"ball"}, " must be finite, got ", o.ball);
  if (!std::isfinite(o.shift_lr)) fail(Field{"shift_lr"}, " must be finite, got ", o.shift_lr);
  if (o.validate_every < 1) fail(Field{"validate_every"}, " must be >= 1, got ", o.validate_every);
  if (o.teacher_batch < 1) fail(Field{"teacher_batch"}, " must be >= 1, got ", o.teacher_batch);
}

/// What a checkpoint holds, packed into one float64 vector (one memo entry, written atomically):
/// ξ, Adam's step and moments, the best ξ with its loss and step, the initial loss, the moved noises.
struct Checkpoint {
  torch::Tensor xi, exp_avg, exp_avg_sq, best_xi, shifted;
  int64_t step = 0;
  double best_loss = 0, initial_loss = 0;
  int64_t best_iteration = 0;

  torch::Tensor pack() const {
    std::vector<torch::Tensor> parts = {
        xi, exp_avg, exp_avg_sq, best_xi,
        torch::tensor({static_cast<double>(step), best_loss, initial_loss, static_cast<double>(best_iteration)},
                      torch::kFloat64)};
    if (shifted.defined()) parts.push_back(shifted.flatten());
    for (auto& p : parts) p = p.detach().to(torch::kCPU, torch::kFloat64).flatten();
    return torch::cat(parts);
  }
  /// The inverse of pack() for N parameters and a moved-noise tensor shaped like `shifted_like`.
  static Checkpoint unpack(const torch::Tensor& packed, int64_t n, const torch::Tensor& shifted_like) {
    const torch::Tensor p = packed.to(torch::kCPU, torch::kFloat64).flatten();
    const int64_t want = 4 * n + 4 + (shifted_like.defined() ? shifted_like.numel() : 0);
    if (p.numel() != want) fail("LD3: a stored checkpoint holds ", p.numel(), " values, expected ", want);
    Checkpoint c;
    c.xi = p.narrow(0, 0, n).clone();
    c.exp_avg = p.narrow(0, n, n).clone();
    c.exp_avg_sq = p.narrow(0, 2 * n, n).clone();
    c.best_xi = p.narrow(0, 3 * n, n).clone();
    const torch::Tensor s = p.narrow(0, 4 * n, 4);
    c.step = static_cast<int64_t>(s[0].item<double>());
    c.best_loss = s[1].item<double>();
    c.initial_loss = s[2].item<double>();
    c.best_iteration = static_cast<int64_t>(s[3].item<double>());
    if (shifted_like.defined())
      c.shifted = p.narrow(0, 4 * n + 4, shifted_like.numel()).reshape(shifted_like.sizes()).to(shifted_like.dtype());
    return c;
  }
};

}  // namespace

Ld3Result search_ld3(std::shared_ptr<const Model> model, const Ld3Student& student, const Sampler& teacher,
                     const Ld3Options& o, const io::Memo& memo, const Ld3Progress& progress) {
  check_options(student, teacher, o);
  std::vector<double> teacher_grid = o.teacher_sigmas;
  if (o.final == FinalStep::None && teacher_grid.back() == 0) teacher_grid.pop_back();
  const double sigma_max = teacher_grid.front();
  const double sigma_min = teacher_grid.back() > 0 ? teacher_grid.back() : teacher_grid[teacher_grid.size() - 2];
  const int64_t N = o.steps, T = o.train_samples, V = o.valid_samples, total = T + V;
  const int64_t B = std::min<int64_t>(o.train_batch, T);
  const ModelMetadata& meta = model->metadata();
  const torch::Device device = model->device();
  int64_t d = 1;
  for (int64_t s : meta.shape) d *= s;
  const double ball = o.ball < 0 ? 0.001 * static_cast<double>(d) / static_cast<double>(N * N) : o.ball;
  const double shift_lr = o.shift_lr < 0 ? 12.0 / static_cast<double>(N) : o.shift_lr;

  // Noises ε of seeds seed … seed + T + V − 1 (training first), in the state's dtype on the CPU.
  std::vector<uint64_t> seeds;
  for (int64_t i = 0; i < total; ++i) seeds.push_back(o.seed + static_cast<uint64_t>(i));
  const torch::Tensor eps = NoiseSource(seeds).randn(meta.shape).to(o.dtype);
  // Their conditioning (training then validation samples), checked before any network call.
  SampleJob job = o.conditioning;
  job.seeds = seeds;
  check_job_conditioning(*model, job);

  Ld3Result result;
  // Teacher targets x*(ε) [T + V, ...shape] on the model's device, computed (or loaded) on first use.
  torch::Tensor targets;
  auto teacher_targets = [&]() -> const torch::Tensor& {
    if (targets.defined()) return targets;
    std::vector<torch::Tensor> blocks;
    for (int64_t begin = 0; begin < total; begin += o.teacher_batch) {
      const int64_t end = std::min<int64_t>(total, begin + o.teacher_batch);
      bool computed = false;
      blocks.push_back(io::memoize(memo, "ld3-teacher-" + std::to_string(begin), [&] {
                         computed = true;
                         torch::NoGradGuard no_grad;
                         NoiseSource noise(std::vector<uint64_t>(seeds.begin() + begin, seeds.begin() + end));
                         Denoiser denoise(model, batch_conditioning(job, begin, end - begin, device));
                         const torch::Tensor x = (eps.narrow(0, begin, end - begin) * sigma_max).to(device);
                         torch::Tensor out = teacher.sample(denoise, x, teacher_grid, noise);
                         denoise.check_finite();
                         return out.to(torch::kCPU);
                       }).to(o.dtype));
      result.resumed += !computed;
      if (progress) progress("teacher", end, total);
    }
    targets = torch::cat(blocks).to(device);
    return targets;
  };

  // Mean per-sample loss of the grid ξ on the validation noises (unmoved: the real objective).
  auto validate = [&](const torch::Tensor& xi) {
    torch::NoGradGuard no_grad;
    const torch::Tensor grid = ld3_grid(xi, sigma_max, sigma_min, o.final);
    const torch::Tensor& y = teacher_targets();
    double sum = 0;
    for (int64_t begin = T; begin < total; begin += o.teacher_batch) {
      const int64_t n = std::min<int64_t>(total - begin, o.teacher_batch);
      Denoiser denoise(model, batch_conditioning(job, begin, n, device));
      const torch::Tensor out = student.sample(denoise, (eps.narrow(0, begin, n) * sigma_max).to(device), grid);
      denoise.check_finite();
      sum += per_sample_mse(out, y.narrow(0, begin, n)).sum().item<double>();
    }
    return sum / static_cast<double>(V);
  };

  // The live state: ξ (zeros: uniform in log σ), Adam, the moved training noises ε'.
  torch::Tensor xi = torch::zeros({N}, torch::kFloat64).requires_grad_(true);
  torch::optim::Adam adam(std::vector<torch::Tensor>{xi}, torch::optim::AdamOptions(o.lr));
  // Adam keeps its per-parameter state under the parameter's TensorImpl: as a string before LibTorch
  // 2.0, as the pointer since.
#if TORCH_VERSION_MAJOR >= 2
  void* const adam_key = xi.unsafeGetTensorImpl();
#else
  const std::string adam_key = c10::guts::to_string(xi.unsafeGetTensorImpl());
#endif
  torch::Tensor shifted = ball > 0 ? eps.narrow(0, 0, T).clone() : torch::Tensor();
  Checkpoint best;  // best_xi, best_loss, best_iteration, initial_loss of the live run

  auto save = [&] {
    Checkpoint c = best;
    c.xi = xi.detach().clone();
    c.exp_avg = torch::zeros({N}, torch::kFloat64);
    c.exp_avg_sq = torch::zeros({N}, torch::kFloat64);
    c.step = 0;
    auto it = adam.state().find(adam_key);
    if (it != adam.state().end()) {
      const auto& s = static_cast<const torch::optim::AdamParamState&>(*it->second);
      c.exp_avg = s.exp_avg(), c.exp_avg_sq = s.exp_avg_sq(), c.step = s.step();
    }
    c.shifted = shifted;
    return c.pack();
  };
  auto restore = [&](const torch::Tensor& packed) {
    const Checkpoint c = Checkpoint::unpack(packed, N, shifted);
    {
      torch::NoGradGuard no_grad;
      xi.copy_(c.xi);
    }
    adam.state().erase(adam_key);
    if (c.step > 0) {
      auto s = std::make_unique<torch::optim::AdamParamState>();
      s->step(c.step);
      s->exp_avg(c.exp_avg.clone());
      s->exp_avg_sq(c.exp_avg_sq.clone());
      adam.state()[adam_key] = std::move(s);
    }
    if (shifted.defined()) shifted = c.shifted;
    best = c;
  };

  // Training step k: batch positions k·B … k·B + B − 1 of the epochs' orders.
  std::vector<int64_t> order;
  int64_t order_epoch = -1;
  auto train_step = [&](int64_t k) {
    std::vector<int64_t> pick;
    for (int64_t p = k * B; p < (k + 1) * B; ++p) {
      if (p / T != order_epoch) order_epoch = p / T, order = epoch_order(o.seed, order_epoch, T);
      pick.push_back(order[static_cast<size_t>(p % T)]);
    }
    const torch::Tensor idx = torch::tensor(pick, torch::kLong);
    const torch::Tensor target = teacher_targets().index_select(0, idx.to(device));
    const torch::Tensor e0 = eps.index_select(0, idx).to(device);
    torch::Tensor e = (ball > 0 ? shifted.index_select(0, idx).to(device) : e0).clone();
    if (ball > 0) e.requires_grad_(true);
    const Conditioning conditioning = samples_conditioning(job, pick, device);
    Denoiser denoise(model, conditioning);
    const torch::Tensor per =
        per_sample_mse(student.sample(denoise, e * sigma_max, ld3_grid(xi, sigma_max, sigma_min, o.final)), target);
    adam.zero_grad();
    per.mean().backward();
    denoise.check_finite();
    torch::nn::utils::clip_grad_norm_(std::vector<torch::Tensor>{xi}, 1.0);  // as the reference code
    adam.step();
    if (ball > 0) {
      // The relaxed objective (soft teacher forcing): one projected gradient step of each student
      // noise inside its ball ‖ε' − ε‖ ≤ r, kept where it lowers that sample's loss.
      torch::NoGradGuard no_grad;
      const torch::Tensor delta = e.detach() - shift_lr * e.grad() - e0;
      std::vector<int64_t> column(static_cast<size_t>(e.dim()), 1);
      column[0] = -1;
      const torch::Tensor norm = delta.flatten(1).norm(2, 1).to(torch::kFloat64);
      const torch::Tensor scale = (ball / norm.clamp_min(1e-300)).clamp_max(1.0).to(e.scalar_type()).reshape(column);
      const torch::Tensor moved = e0 + delta * scale;
      Denoiser again(model, conditioning);
      const torch::Tensor moved_loss =
          per_sample_mse(student.sample(again, moved * sigma_max, ld3_grid(xi, sigma_max, sigma_min, o.final)), target);
      const torch::Tensor keep = (moved_loss < per.detach()).reshape(column);
      shifted.index_copy_(0, idx, torch::where(keep, moved, e.detach()).to(torch::kCPU));
    }
  };

  // Checkpoints after steps 0, every, 2·every, …, iterations: each one is a memo entry, so a run
  // over a killed run's memo loads the finished ones and continues from the last.
  std::vector<int64_t> checkpoints;
  for (int64_t k = 0; k < o.iterations; k += o.validate_every) checkpoints.push_back(k);
  checkpoints.push_back(o.iterations);
  bool live = true;  // the live state is that of the previous checkpoint
  torch::Tensor last;
  int64_t done = 0;
  for (int64_t c : checkpoints) {
    bool computed = false;
    const torch::Tensor packed = io::memoize(memo, "ld3-iter-" + std::to_string(c), [&] {
      computed = true;
      if (!live) restore(last);
      for (int64_t k = done; k < c; ++k) {
        train_step(k);
        if (progress) progress("train", k + 1, o.iterations);
      }
      const double loss = validate(xi.detach());
      if (c == 0) best.initial_loss = loss;
      if (c == 0 || loss < best.best_loss) {
        best.best_loss = loss;
        best.best_xi = xi.detach().clone();
        best.best_iteration = c;
      }
      return save();
    });
    live = computed;
    if (!computed) {
      last = packed;
      ++result.resumed;
      if (progress) progress("train", c, o.iterations);
    }
    done = c;
  }
  if (!live) restore(last);

  result.sigmas = to_vector(ld3_grid(best.best_xi, sigma_max, sigma_min, o.final));
  result.initial_sigmas = to_vector(ld3_grid(torch::zeros({N}, torch::kFloat64), sigma_max, sigma_min, o.final));
  for (size_t i = 0; i + 1 < result.sigmas.size(); ++i)
    if (!(result.sigmas[i + 1] < result.sigmas[i]))
      fail("LD3: the learned grid collapsed at position ", i + 1, " (", result.sigmas[i], " then ",
           result.sigmas[i + 1], "); lower lr");
  result.valid_loss = best.best_loss;
  result.initial_valid_loss = best.initial_loss;
  result.best_iteration = static_cast<int>(best.best_iteration);
  return result;
}

}  // namespace scoreflow
