// scoreflow eval wbound: Lipschitz estimates, Kwon et al.'s W2 bound, and the PF-ODE coupling bound
// (jobs::wbound_job); this file reads flags and prints.
#include <cmath>
#include <cstdio>

#include "cli/cond_options.h"
#include "cli/eval.h"
#include "scoreflow/jobs/eval.h"

namespace scoreflow::cli {
namespace {

struct Options {
  ModelOptions model;
  DataCondOptions cond;
  std::string sigmas;
  jobs::WBoundJob job;
  bool json = false;
};

void run(Options o) {
  o.job.sigmas = parse_sigmas(o.sigmas);
  o.job.conditions = [&](const Model& m, int64_t items) { return o.cond.resolve(m, items); };
  const auto res = jobs::wbound_job(o.model.open(), o.job);
  if (o.json) return print_json(res.report);
  const eval::WBoundReport& r = res.bound;
  const eval::WBoundOptions& w = o.job.options;
  std::printf("model   %s\ntarget  %s\n\n", res.model.c_str(), res.target.c_str());
  std::printf("%10s %14s %14s %14s %14s %14s %12s\n", "sigma", "L_s max", "L_s mean", "|J|_2 max", "|J|_2 mean",
              w.use_dsm ? "DSM_eps" : "SM_eps", "I(sigma)");
  for (const auto& row : r.rows)
    std::printf("%10.4g %14.6g %14.6g %14.6g %14.6g %14.6g %12.5g\n", row.sigma, row.lipschitz_max, row.lipschitz_mean,
                row.spectral_max, row.spectral_mean, row.score_error, std::exp(row.log_i));
  std::printf(
      "\nL_s: one-sided Lipschitz of the sigma-space score, sample-based (max/mean over %lld noised data points).\n",
      static_cast<long long>(w.lipschitz_points));
  std::printf("Kwon et al. Theorem 1 (%s): W2 <= %.6g  (integral %.6g + I(sigma_max) %.3g x W2(p_T,q_T) %.6g [%s])\n",
              w.use_dsm ? "DSM (looser: DSM >= SM)" : "exact SM", r.kwon_bound, r.kwon_integral,
              std::exp(r.rows.back().log_i), r.prior_w2, r.prior_w2_kind.c_str());
  std::printf("PF-ODE coupling:  sqrt(E|x0 - y0|^2) = %.6g +- %.2g  (%s, %d steps, %lld samples)\n", r.su_coupling,
              r.su_coupling_se, w.ode_sampler.c_str(), w.ode_steps, static_cast<long long>(w.ode_samples));
  if (r.has_true_w2) std::printf("true W2 (Bures, Gaussian model vs Gaussian target) = %.6g\n", r.true_w2);
  if (r.has_gelbrich) std::printf("Gelbrich lower bound (Bures W2 to the data's Gaussian fit) = %.6g\n", r.gelbrich_w2);
}

}  // namespace

void register_eval_wbound(CLI::App& eval) {
  auto* sub = eval.add_subcommand(
      "wbound", "Lipschitz estimates of the score and Wasserstein bounds (Kwon et al.; PF-ODE coupling)");
  static Options o;
  eval::WBoundOptions& w = o.job.options;
  o.model.add(*sub);
  o.cond.add(*sub);
  sub->add_option("--data", o.job.data,
                  "dataset (its smoothed empirical distribution) or builtin:gaussian|gmm|ring8[:...]")
      ->required();
  sub->add_option("--timesteps", o.job.timesteps, "noise levels over the model's range")->capture_default_str();
  sub->add_option("--sigmas", o.sigmas, "explicit noise levels instead, e.g. 0.01,0.1,1,10,80");
  sub->add_option("--points", w.lipschitz_points, "data-noised points per level for the Lipschitz estimate")
      ->capture_default_str();
  sub->add_option("--iterations", w.iterations, "power iterations per pass")->capture_default_str();
  sub->add_option("--num-images", w.num_images, "draws per level for SM/DSM")->capture_default_str();
  sub->add_flag("--dsm", w.use_dsm, "use DSM instead of the exact SM in the bound (looser)");
  sub->add_option("--ode-sampler", w.ode_sampler, "sampler for the coupling ODEs")->capture_default_str();
  sub->add_option("--ode-steps", w.ode_steps, "steps of the coupling ODEs (Karras grid)")->capture_default_str();
  sub->add_option("--ode-samples", w.ode_samples, "coupled samples (seeds 0..N-1; 0 skips)")->capture_default_str();
  sub->add_option("--limit", o.job.limit, "use the first N dataset items (0: all)");
  sub->add_option("--batch", w.batch, "batch size")->capture_default_str();
  sub->add_option("--seed", w.seed, "seed of the draws")->capture_default_str();
  sub->add_option("--out", o.job.output.out,
                  "write the JSON report to this file (a killed run resumes from OUT.parts)");
  sub->add_flag("--overwrite", o.job.output.overwrite, "discard the finished levels of an earlier, unfinished run");
  sub->add_flag("--json", o.json, "print the JSON report on stdout");
  o.job.output.out_field = "--out";
  set_action(sub, [] { run(o); });
}

}  // namespace scoreflow::cli
