// Kwon et al. (2022) Theorem 1 with measured L_s and SM, and the PF-ODE coupling bound.
#include "scoreflow/wbound.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "scoreflow/builtin.h"
#include "scoreflow/error.h"
#include "scoreflow/metrics.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "scoreflow/sigmas.h"

namespace scoreflow::eval {
namespace {

/// Trapezoid rule in log σ: ∫ f dσ = ∫ f(σ)·σ d ln σ over ascending σ.
double trapezoid_log(const std::vector<double>& sigma, const std::vector<double>& f, size_t upto) {
  double sum = 0;
  for (size_t i = 1; i <= upto; ++i)
    sum += 0.5 * (f[i] * sigma[i] + f[i - 1] * sigma[i - 1]) * (std::log(sigma[i]) - std::log(sigma[i - 1]));
  return sum;
}

}  // namespace

WBoundReport wasserstein_bound(std::shared_ptr<const Model> model, const ExactTarget& target, const WBoundOptions& o,
                               const io::Memo& memo) {
  if (o.sigmas.empty()) fail("the Wasserstein bound needs at least one noise level");
  if (o.lipschitz_points < 1) fail(Field{"lipschitz_points"}, " must be >= 1, got ", o.lipschitz_points);
  const ModelMetadata& meta = model->metadata();
  std::vector<double> sigmas = o.sigmas;
  std::sort(sigmas.begin(), sigmas.end());
  sigmas.erase(std::unique(sigmas.begin(), sigmas.end()), sigmas.end());
  const int64_t d = target.dim();
  std::vector<int64_t> shape{o.lipschitz_points};
  shape.insert(shape.end(), meta.shape.begin(), meta.shape.end());

  WBoundReport report;
  // Score-matching error per σ (exact SM against the target, or DSM).
  ScoreMatchingOptions sm_options;
  sm_options.sigmas = sigmas;
  sm_options.num_images = o.num_images;
  sm_options.batch = o.batch;
  sm_options.seed = o.seed;
  sm_options.conditions = o.conditions;
  std::vector<ScoreMatchingRow> sm = score_matching(*model, target, sm_options, memo);

  for (size_t k = 0; k < sigmas.size(); ++k) {
    const double sigma = sigmas[k];
    char name[48];  // room for any size_t
    std::snprintf(name, sizeof name, "lipschitz-level-%03zu", k);
    const torch::Tensor extremes = io::memoize(memo, name, [&] {
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed + 7919ull * (k + 1));
      torch::Tensor items;
      torch::Tensor x0 = target.sample(o.lipschitz_points, gen, &items);
      torch::Tensor x = (x0 + sigma * at::randn({o.lipschitz_points, d}, gen, torch::kFloat64)).reshape(shape);
      const Conditioning c =
          items.defined() ? o.conditions.of(items, model->device()) : o.conditions.range(0, 1, model->device());
      JacobianExtremes j =
          score_jacobian_extremes(*model, x.to(model->device(), o.dtype), sigma, o.iterations, o.seed + k, c.conds);
      return torch::stack({j.one_sided, j.spectral}).to(torch::kCPU, torch::kFloat64);
    });
    WBoundRow row;
    row.sigma = sigma;
    row.lipschitz_max = extremes[0].max().item<double>();
    row.lipschitz_mean = extremes[0].mean().item<double>();
    row.spectral_max = extremes[1].max().item<double>();
    row.spectral_mean = extremes[1].mean().item<double>();
    row.score_error = std::max(0.0, o.use_dsm ? sm[k].dsm : sm[k].sm);
    report.rows.push_back(row);
  }

  // I(σ) = exp ∫_0^σ 2r L_s(r) dr, L_s held at its σ_min value on [0, σ_min] (∫ 2r dr = σ_min²).
  std::vector<double> two_r_l, integrand;
  for (const WBoundRow& r : report.rows) two_r_l.push_back(2 * r.sigma * r.lipschitz_max);
  for (size_t k = 0; k < report.rows.size(); ++k)
    report.rows[k].log_i = report.rows[0].lipschitz_max * sigmas[0] * sigmas[0] + trapezoid_log(sigmas, two_r_l, k);
  for (const WBoundRow& r : report.rows) integrand.push_back(2 * std::exp(r.log_i) * std::sqrt(r.score_error));
  report.kwon_integral = integrand[0] * sigmas[0] + trapezoid_log(sigmas, integrand, sigmas.size() - 1);

  // W2(p_T, q_T), q_T = N(0, σ_max² I) (every sampler starts from σ_0·ε).
  const double sigma_max = sigmas.back();
  torch::Tensor mu, cov;
  if (target.gaussian(&mu, &cov)) {
    torch::Tensor eye = torch::eye(d, torch::kFloat64);
    report.prior_w2 = std::sqrt(
        std::max(0.0, eval::gaussian_w2_squared(mu, cov + sigma_max * sigma_max * eye,
                                                torch::zeros({d}, torch::kFloat64), sigma_max * sigma_max * eye)));
    report.prior_w2_kind = "exact (Gaussian target)";
  } else {
    // Coupling (x0 + σε, σε): W2² ≤ E‖x0‖² = ‖μ‖² + tr Σ.
    auto [m, c] = target.moments();
    report.prior_w2 = std::sqrt(m.pow(2).sum().item<double>() + c.trace().item<double>());
    report.prior_w2_kind = "coupling bound sqrt(E|x0|^2)";
  }
  report.kwon_bound = report.kwon_integral + std::exp(report.rows.back().log_i) * report.prior_w2;

  // Su's coupling: model PF-ODE and exact PF-ODE from the same noise.
  if (o.ode_samples > 0) {
    // Squared distances per coupled sample, then the model's NFE (kept together by a resumable caller).
    const torch::Tensor kept = io::memoize(memo, "coupling", [&] {
      auto sampler = make_sampler(o.ode_sampler);
      SampleJob job;
      job.sigmas = make_sigmas("karras", o.ode_steps, meta.schedule, KeyValueArgs(""));
      for (int64_t i = 0; i < o.ode_samples; ++i) job.seeds.push_back(static_cast<uint64_t>(i));
      job.batch = static_cast<int>(o.batch);
      job.device = model->device();
      SampleJob model_job = job;
      if (!o.conditions.empty()) {  // seed i uses row i mod P, as sampling does
        model_job.cond = o.conditions.tables;
        model_job.cond_rows = condition_rows(o.ode_samples, o.conditions.tables.rows, {});
      }
      SampleResult xs = run_sampler(*sampler, model, model_job);
      job.device = torch::kCPU;
      SampleResult ys = run_sampler(*sampler, target.model(), job);
      torch::Tensor dist2 = (xs.samples.to(torch::kFloat64).reshape({o.ode_samples, -1}) -
                             ys.samples.to(torch::kFloat64).reshape({o.ode_samples, -1}))
                                .pow(2)
                                .sum(1);
      return torch::cat({dist2, torch::tensor({static_cast<double>(xs.nfe)}, torch::kFloat64)});
    });
    const torch::Tensor dist2 = kept.narrow(0, 0, o.ode_samples);
    const double mean = dist2.mean().item<double>();
    report.su_coupling = std::sqrt(mean);
    const double se =
        o.ode_samples > 1 ? dist2.std().item<double>() / std::sqrt(static_cast<double>(o.ode_samples)) : 0.0;
    report.su_coupling_se = mean > 0 ? se / (2 * report.su_coupling) : 0.0;
    report.su_nfe = static_cast<int64_t>(kept[o.ode_samples].item<double>());
  }

  // Gaussian network: its distribution is known exactly, so W2 to the target can be shown too.
  if (auto gauss = std::dynamic_pointer_cast<const GaussianMixtureModel>(model);
      gauss && gauss->weights().numel() == 1) {
    torch::Tensor model_mu = gauss->means()[0], model_cov = torch::diag(gauss->variances()[0]);
    if (target.gaussian(&mu, &cov)) {
      report.has_true_w2 = true;
      report.true_w2 = std::sqrt(std::max(0.0, eval::gaussian_w2_squared(model_mu, model_cov, mu, cov)));
    } else {
      auto [m, c] = target.moments();
      report.has_gelbrich = true;
      report.gelbrich_w2 = std::sqrt(std::max(0.0, eval::gaussian_w2_squared(model_mu, model_cov, m, c)));
    }
  }
  return report;
}

}  // namespace scoreflow::eval
