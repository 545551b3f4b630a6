// DSM vs exact SM and the identity DSM − SM = d·(1 − Γ*) (Vincent 2011; docs/design.md §6).
#include "scoreflow/score_matching.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <cstdio>

#include "scoreflow/error.h"

namespace scoreflow::eval {
namespace {

/// Mean and standard error (sample std with n − 1, over √n) of a [n] float64 tensor.
std::pair<double, double> mean_se(const torch::Tensor& v) {
  const double n = static_cast<double>(v.numel());
  const double mean = v.mean().item<double>();
  const double se = n > 1 ? v.std().item<double>() / std::sqrt(n) : 0.0;
  return {mean, se};
}

}  // namespace

std::vector<ScoreMatchingRow> score_matching(const Model& model, const ExactTarget& target,
                                             const ScoreMatchingOptions& options, const io::Memo& memo) {
  if (options.num_images < 2)
    fail(Field{"num_images"}, " must be >= 2 (standard errors need two draws), got ", options.num_images);
  if (options.batch < 1) fail(Field{"batch"}, " must be >= 1, got ", options.batch);
  if (options.sigmas.empty()) fail("score matching needs at least one noise level");
  const ModelMetadata& meta = model.metadata();
  const int64_t d = target.dim(), n = options.num_images;
  std::vector<int64_t> shape{0};
  shape.insert(shape.end(), meta.shape.begin(), meta.shape.end());
  const std::shared_ptr<const Model> shared(&model, [](const Model*) {});
  // A conditional model sees each drawn item's conditions (or the one shared row).
  const auto conditioning = [&](const torch::Tensor& items, int64_t begin, int64_t m) {
    return items.defined() ? options.conditions.of(items.narrow(0, begin, m), model.device())
                           : options.conditions.range(0, 1, model.device());
  };

  std::vector<ScoreMatchingRow> rows;
  for (size_t k = 0; k < options.sigmas.size(); ++k) {
    const double sigma = options.sigmas[k];
    if (!(sigma > 0)) fail("noise levels must be > 0, got ", sigma);
    // The network part of level k, kept by a resumable caller: per-sample ‖ε_θ − ε‖², ‖ε_θ − ε*‖², ‖ε*‖².
    char name[32];
    std::snprintf(name, sizeof name, "sm-level-%03zu", k);
    const torch::Tensor per_sample = io::memoize(memo, name, [&] {
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(options.seed + 1000003ull * k);
      // All draws for this σ up front, so that the batch size changes nothing.
      torch::Tensor items;
      torch::Tensor x0 = target.sample(n, gen, &items);  // [n, d]
      torch::Tensor eps = at::randn({n, d}, gen, torch::kFloat64);
      torch::Tensor a = torch::empty({n}, torch::kFloat64), b = torch::empty_like(a), g = torch::empty_like(a);
      for (int64_t begin = 0; begin < n; begin += options.batch) {
        const int64_t m = std::min(options.batch, n - begin);
        shape[0] = m;
        // The network sees float32; ε is re-derived from the x it actually saw.
        torch::Tensor x32 = (x0.narrow(0, begin, m) + sigma * eps.narrow(0, begin, m)).to(torch::kFloat32);
        torch::Tensor x = x32.to(torch::kFloat64);
        torch::Tensor e = (x - x0.narrow(0, begin, m)) / sigma;
        const Denoiser denoise(shared, conditioning(items, begin, m));
        torch::Tensor denoised =
            denoise(x32.reshape(shape).to(model.device()), sigma).to(torch::kCPU, torch::kFloat64).reshape({m, d});
        denoise.check_finite();
        torch::Tensor eps_theta = (x - denoised) / sigma;
        torch::Tensor eps_star = (x - target.denoise(x, sigma)) / sigma;
        a.narrow(0, begin, m).copy_((eps_theta - e).pow(2).sum(1));
        b.narrow(0, begin, m).copy_((eps_theta - eps_star).pow(2).sum(1));
        g.narrow(0, begin, m).copy_(eps_star.pow(2).sum(1));
      }
      return torch::stack({a, b, g});
    });
    const torch::Tensor a = per_sample[0], b = per_sample[1], g = per_sample[2];
    ScoreMatchingRow row;
    row.sigma = sigma;
    row.d = d;
    row.n = n;
    std::tie(row.dsm, row.dsm_se) = mean_se(a);
    std::tie(row.sm, row.sm_se) = mean_se(b);
    row.gamma_star = g.mean().item<double>() / static_cast<double>(d);
    row.gap = row.dsm - row.sm;
    row.gap_expected = static_cast<double>(d) * (1.0 - row.gamma_star);
    // Per sample, (‖ε_θ − ε‖² − ‖ε_θ − ε*‖²) − (d − ‖ε*‖²) has mean 0 for every θ because
    // E[ε | x] = ε*; its standard error says how closely one run can show it.
    std::tie(row.residual, row.residual_se) = mean_se(a - b - (static_cast<double>(d) - g));
    rows.push_back(row);
  }
  return rows;
}

}  // namespace scoreflow::eval
