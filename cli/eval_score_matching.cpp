// scoreflow eval score-matching: DSM vs exact SM per noise level and the DSM − SM identity.
#include <cmath>
#include <cstdio>

#include "cli/cond_options.h"
#include "cli/eval.h"
#include "cli/job_flags.h"
#include "io/fsutil.h"
#include "scoreflow/error.h"
#include "scoreflow/score_matching.h"

namespace scoreflow::cli {
namespace {

struct Options {
  ModelOptions model;
  DataCondOptions cond;
  std::string data, sigmas, out;
  int timesteps = 10;
  int64_t num_images = 256, batch = 64, limit = 0;
  uint64_t seed = 0;
  bool json = false, overwrite = false;
};

void run(const Options& o) {
  auto start = std::chrono::steady_clock::now();
  io::check_outputs({{"--out", o.out}});
  auto model = o.model.open();
  const ModelMetadata& meta = model->metadata();
  eval::ExactTarget target(o.data, model, o.limit);
  const ItemConditions conditions = o.cond.resolve(*model, target.size());
  eval::ScoreMatchingOptions sm;
  sm.sigmas = eval_sigmas(o.sigmas, o.timesteps, meta.schedule);
  sm.num_images = o.num_images;
  sm.batch = o.batch;
  sm.seed = o.seed;
  // With --out, each finished level is kept in OUT.parts so that a killed run resumes.
  sm.conditions = conditions;
  io::Settings settings = jobs::model_settings(*model);
  if (!conditions.empty()) settings.push_back({"conditions", conditions.fingerprint()});
  settings.insert(settings.end(), {{"data", io::path_fingerprint(o.data)},
                                   {"limit", std::to_string(o.limit)},
                                   {"sigmas", jobs::exact_list(sm.sigmas)},
                                   {"num images", std::to_string(o.num_images)},
                                   {"batch", std::to_string(o.batch)},
                                   {"seed", std::to_string(o.seed)}});
  auto store = chunks_for(o.out, std::move(settings), o.overwrite, "--out");
  const auto rows = eval::score_matching(*model, target, sm, store ? store->memo() : io::Memo{});
  const auto times = eval::network_times(meta.schedule, sm.sigmas);

  nlohmann::json doc = {{"command", "eval score-matching"},
                        {"model", model->name()},
                        {"model_summary", model->summary()},
                        {"target", target.describe()},
                        {"num_images", o.num_images},
                        {"seed", o.seed},
                        {"units",
                         "eps: DSM = E|eps_theta - eps|^2, SM = E|eps_theta - eps*|^2 summed over the d values "
                         "of a sample; per_dim = /d; score units (sigma-space) = eps units / sigma^2. For VP "
                         "models x = x_t/alpha = x0 + sigma*eps, so this eps is the VP eps."}};
  nlohmann::json list = nlohmann::json::array();
  for (size_t k = 0; k < rows.size(); ++k) {
    const auto& r = rows[k];
    const double d = static_cast<double>(r.d), s2 = r.sigma * r.sigma;
    list.push_back({{"sigma", r.sigma},
                    {"t", times[k]},
                    {"d", r.d},
                    {"dsm", r.dsm},
                    {"dsm_se", r.dsm_se},
                    {"dsm_per_dim", r.dsm / d},
                    {"dsm_score_units", r.dsm / s2},
                    {"sm", r.sm},
                    {"sm_se", r.sm_se},
                    {"sm_per_dim", r.sm / d},
                    {"sm_score_units", r.sm / s2},
                    {"gamma_star", r.gamma_star},
                    {"dsm_minus_sm", r.gap},
                    {"d_one_minus_gamma_star", r.gap_expected},
                    {"identity_residual", r.residual},
                    {"identity_residual_se", r.residual_se}});
  }
  doc["rows"] = list;
  doc["wall_seconds"] = seconds_since(start);
  if (!o.out.empty()) io::write_file_atomic(o.out, doc.dump(2) + "\n");
  note_resumed(store ? &*store : nullptr);
  if (store) store->remove();
  if (o.json) return print_json(doc);
  std::printf(
      "model   %s\ntarget  %s\n%lld draws per level (x0 ~ target, one eps each), eps units summed over d = %lld\n\n",
      model->name().c_str(), target.describe().c_str(), static_cast<long long>(o.num_images),
      static_cast<long long>(rows.empty() ? 0 : rows[0].d));
  std::printf("%10s %10s %22s %10s %22s %9s %12s %12s %18s\n", "sigma", "t", "DSM (+-se)", "DSM/dim", "SM exact (+-se)",
              "Gamma*", "DSM-SM", "d(1-Gamma*)", "residual (+-se)");
  for (size_t k = 0; k < rows.size(); ++k) {
    const auto& r = rows[k];
    std::printf("%10.4g %10.4g %12.5g +-%-8.2g %10.4g %12.5g +-%-8.2g %9.5f %12.5g %12.5g %9.3g +-%-7.2g\n", r.sigma,
                times[k], r.dsm, r.dsm_se, r.dsm / static_cast<double>(r.d), r.sm, r.sm_se, r.gamma_star, r.gap,
                r.gap_expected, r.residual, r.residual_se);
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
  sub->add_option("--data", o.data,
                  "dataset (.npy/.npz points or images, image folder, idx) or builtin:gaussian|gmm|ring8[:...]")
      ->required();
  sub->add_option("--timesteps", o.timesteps,
                  "number of noise levels over the model's range (vp_discrete: its timesteps)")
      ->capture_default_str();
  sub->add_option("--sigmas", o.sigmas, "explicit noise levels instead, e.g. 0.1,1,10");
  sub->add_option("--num-images", o.num_images, "x0 draws per level (one noise draw each)")->capture_default_str();
  sub->add_option("--limit", o.limit, "use the first N dataset items (0: all)");
  sub->add_option("--batch", o.batch, "network batch size")->capture_default_str();
  sub->add_option("--seed", o.seed, "seed of the draws")->capture_default_str();
  sub->add_option("--out", o.out, "write the JSON report to this file (a killed run resumes from OUT.parts)");
  sub->add_flag("--overwrite", o.overwrite, "discard the finished levels of an earlier, unfinished run");
  sub->add_flag("--json", o.json, "print the JSON report on stdout");
  set_action(sub, [] { run(o); });
}

}  // namespace scoreflow::cli
