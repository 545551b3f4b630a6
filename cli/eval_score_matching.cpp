// scoreflow eval score-matching: DSM vs exact SM per noise level and the DSM − SM identity
// (jobs::score_matching_job); this file reads flags and prints.
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
  jobs::ScoreMatchingJob job;
  bool json = false;
};

void run(Options o) {
  o.job.sigmas = parse_sigmas(o.sigmas);
  o.job.conditions = [&](const Model& m, int64_t items) { return o.cond.resolve(m, items); };
  const auto r = jobs::score_matching_job(o.model.open(), o.job);
  if (o.json) return print_json(r.report);
  std::printf(
      "model   %s\ntarget  %s\n%lld draws per level (x0 ~ target, one eps each), eps units summed over d = %lld\n\n",
      r.model.c_str(), r.target.c_str(), static_cast<long long>(o.job.num_images),
      static_cast<long long>(r.rows.empty() ? 0 : r.rows[0].d));
  std::printf("%10s %10s %22s %10s %22s %9s %12s %12s %18s\n", "sigma", "t", "DSM (+-se)", "DSM/dim", "SM exact (+-se)",
              "Gamma*", "DSM-SM", "d(1-Gamma*)", "residual (+-se)");
  for (size_t k = 0; k < r.rows.size(); ++k) {
    const auto& w = r.rows[k];
    std::printf("%10.4g %10.4g %12.5g +-%-8.2g %10.4g %12.5g +-%-8.2g %9.5f %12.5g %12.5g %9.3g +-%-7.2g\n", w.sigma,
                r.times[k], w.dsm, w.dsm_se, w.dsm / static_cast<double>(w.d), w.sm, w.sm_se, w.gamma_star, w.gap,
                w.gap_expected, w.residual, w.residual_se);
  }
  std::printf(
      "\nIdentity (Vincent 2011): DSM - SM = d(1 - Gamma*) for every network; the residual should be within a few s.e. "
      "of 0.\n");
}

}  // namespace

void register_eval_score_matching(CLI::App& eval) {
  auto* sub = eval.add_subcommand("score-matching",
                                  "DSM vs exact score matching against a dataset's smoothed empirical distribution");
  static Options o;
  o.model.add(*sub);
  o.cond.add(*sub);
  sub->add_option("--data", o.job.data,
                  "dataset (.npy/.npz points or images, image folder, idx) or builtin:gaussian|gmm|ring8[:...]")
      ->required();
  sub->add_option("--timesteps", o.job.timesteps,
                  "number of noise levels over the model's range (vp_discrete: its timesteps)")
      ->capture_default_str();
  sub->add_option("--sigmas", o.sigmas, "explicit noise levels instead, e.g. 0.1,1,10");
  sub->add_option("--num-images", o.job.num_images, "x0 draws per level (one noise draw each)")->capture_default_str();
  sub->add_option("--limit", o.job.limit, "use the first N dataset items (0: all)");
  sub->add_option("--batch", o.job.batch, "network batch size")->capture_default_str();
  sub->add_option("--seed", o.job.seed, "seed of the draws")->capture_default_str();
  sub->add_option("--out", o.job.output.out,
                  "write the JSON report to this file (a killed run resumes from OUT.parts)");
  sub->add_flag("--overwrite", o.job.output.overwrite, "discard the finished levels of an earlier, unfinished run");
  sub->add_flag("--json", o.json, "print the JSON report on stdout");
  o.job.output.out_field = "--out";
  set_action(sub, [] { run(o); });
}

}  // namespace scoreflow::cli
