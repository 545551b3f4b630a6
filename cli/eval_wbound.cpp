// scoreflow eval wbound: Lipschitz estimates, Kwon et al.'s W2 bound, and the PF-ODE coupling bound.
#include <cmath>
#include <cstdio>

#include "cli/cond_options.h"
#include "cli/eval.h"
#include "cli/job_flags.h"
#include "io/fsutil.h"
#include "scoreflow/error.h"
#include "scoreflow/wbound.h"

namespace scoreflow::cli {
namespace {

struct Options {
  ModelOptions model;
  DataCondOptions cond;
  std::string data, sigmas, out, sampler = "heun";
  int timesteps = 12, iterations = 30, ode_steps = 40;
  int64_t num_images = 256, points = 32, ode_samples = 256, batch = 64, limit = 0;
  uint64_t seed = 0;
  bool dsm = false, json = false, overwrite = false;
};

void run(const Options& o) {
  auto start = std::chrono::steady_clock::now();
  io::check_outputs({{"--out", o.out}});
  auto model = o.model.open();
  const ModelMetadata& meta = model->metadata();
  eval::ExactTarget target(o.data, model, o.limit);
  const ItemConditions conditions = o.cond.resolve(*model, target.size());
  eval::WBoundOptions w;
  w.sigmas = eval_sigmas(o.sigmas, o.timesteps, meta.schedule);
  w.lipschitz_points = o.points;
  w.iterations = o.iterations;
  w.num_images = o.num_images;
  w.batch = o.batch;
  w.use_dsm = o.dsm;
  w.ode_steps = o.ode_steps;
  w.ode_sampler = o.sampler;
  w.ode_samples = o.ode_samples;
  w.seed = o.seed;
  // Builtins compute in float64 anyway; TorchScript networks take float32.
  w.dtype = model->name().rfind("builtin:", 0) == 0 ? torch::kFloat64 : torch::kFloat32;
  // With --out, each finished level and the coupling are kept in OUT.parts so that a killed run resumes.
  w.conditions = conditions;
  io::Settings settings = jobs::model_settings(*model);
  if (!conditions.empty()) settings.push_back({"conditions", conditions.fingerprint()});
  settings.insert(settings.end(), {{"data", io::path_fingerprint(o.data)},
                                   {"limit", std::to_string(o.limit)},
                                   {"sigmas", jobs::exact_list(w.sigmas)},
                                   {"points", std::to_string(o.points)},
                                   {"iterations", std::to_string(o.iterations)},
                                   {"num images", std::to_string(o.num_images)},
                                   {"ode sampler", o.sampler},
                                   {"ode steps", std::to_string(o.ode_steps)},
                                   {"ode samples", std::to_string(o.ode_samples)},
                                   {"batch", std::to_string(o.batch)},
                                   {"seed", std::to_string(o.seed)}});
  auto store = chunks_for(o.out, std::move(settings), o.overwrite, "--out");
  const eval::WBoundReport r = eval::wasserstein_bound(model, target, w, store ? store->memo() : io::Memo{});

  const std::string err_name = o.dsm ? "DSM (looser: DSM >= SM)" : "exact SM";
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : r.rows)
    rows.push_back({{"sigma", row.sigma},
                    {"lipschitz_one_sided_max", row.lipschitz_max},
                    {"lipschitz_one_sided_mean", row.lipschitz_mean},
                    {"spectral_norm_max", row.spectral_max},
                    {"spectral_norm_mean", row.spectral_mean},
                    {"score_error_eps", row.score_error},
                    {"I", std::exp(row.log_i)}});
  nlohmann::json doc = {
      {"command", "eval wbound"},
      {"model", model->name()},
      {"target", target.describe()},
      {"lipschitz",
       {{"estimate", "sample-based: power iteration (" + std::to_string(o.iterations) +
                         " its) on autograd JVP/VJP of the sigma-space score at " + std::to_string(o.points) +
                         " data-noised points per sigma; max/mean over points (a lower estimate of the sup)"}}},
      {"rows", rows},
      {"kwon",
       {{"form",
         "W2 <= int_0^sigma_max 2 I(s) sqrt(err_eps(s)) ds + I(sigma_max) W2(p_T, q_T), I(s) = exp int_0^s 2r L_s(r) "
         "dr "
         "(VE in sigma-space: L_f = 0, g^2 = 2 sigma); trapezoid in log sigma"},
        {"score_error", err_name},
        {"integral", r.kwon_integral},
        {"prior_w2", r.prior_w2},
        {"prior_w2_kind", r.prior_w2_kind},
        {"I_sigma_max", std::exp(r.rows.back().log_i)},
        {"bound", r.kwon_bound}}},
      {"su_coupling",
       {{"form", "sqrt(E|x0 - y0|^2): model PF-ODE vs exact PF-ODE from the same noise (" + o.sampler + ", " +
                     std::to_string(o.ode_steps) + " Karras steps)"},
        {"value", r.su_coupling},
        {"se", r.su_coupling_se},
        {"samples", o.ode_samples},
        {"nfe", r.su_nfe}}},
      {"wall_seconds", seconds_since(start)}};
  if (r.has_true_w2) doc["true_w2"] = r.true_w2;
  if (r.has_gelbrich) doc["gelbrich_w2_lower_bound"] = r.gelbrich_w2;
  if (!o.out.empty()) io::write_file_atomic(o.out, doc.dump(2) + "\n");
  note_resumed(store ? &*store : nullptr);
  if (store) store->remove();
  if (o.json) return print_json(doc);
  std::printf("model   %s\ntarget  %s\n\n", model->name().c_str(), target.describe().c_str());
  std::printf("%10s %14s %14s %14s %14s %14s %12s\n", "sigma", "L_s max", "L_s mean", "|J|_2 max", "|J|_2 mean",
              o.dsm ? "DSM_eps" : "SM_eps", "I(sigma)");
  for (const auto& row : r.rows)
    std::printf("%10.4g %14.6g %14.6g %14.6g %14.6g %14.6g %12.5g\n", row.sigma, row.lipschitz_max, row.lipschitz_mean,
                row.spectral_max, row.spectral_mean, row.score_error, std::exp(row.log_i));
  std::printf(
      "\nL_s: one-sided Lipschitz of the sigma-space score, sample-based (max/mean over %lld noised data points).\n",
      static_cast<long long>(o.points));
  std::printf("Kwon et al. Theorem 1 (%s): W2 <= %.6g  (integral %.6g + I(sigma_max) %.3g x W2(p_T,q_T) %.6g [%s])\n",
              err_name.c_str(), r.kwon_bound, r.kwon_integral, std::exp(r.rows.back().log_i), r.prior_w2,
              r.prior_w2_kind.c_str());
  std::printf("PF-ODE coupling:  sqrt(E|x0 - y0|^2) = %.6g +- %.2g  (%s, %d steps, %lld samples)\n", r.su_coupling,
              r.su_coupling_se, o.sampler.c_str(), o.ode_steps, static_cast<long long>(o.ode_samples));
  if (r.has_true_w2) std::printf("true W2 (Bures, Gaussian model vs Gaussian target) = %.6g\n", r.true_w2);
  if (r.has_gelbrich) std::printf("Gelbrich lower bound (Bures W2 to the data's Gaussian fit) = %.6g\n", r.gelbrich_w2);
}

}  // namespace

void register_eval_wbound(CLI::App& eval) {
  auto* sub = eval.add_subcommand(
      "wbound", "Lipschitz estimates of the score and Wasserstein bounds (Kwon et al.; PF-ODE coupling)");
  static Options o;
  o.model.add(*sub);
  o.cond.add(*sub);
  sub->add_option("--data", o.data, "dataset (its smoothed empirical distribution) or builtin:gaussian|gmm|ring8[:...]")
      ->required();
  sub->add_option("--timesteps", o.timesteps, "noise levels over the model's range")->capture_default_str();
  sub->add_option("--sigmas", o.sigmas, "explicit noise levels instead, e.g. 0.01,0.1,1,10,80");
  sub->add_option("--points", o.points, "data-noised points per level for the Lipschitz estimate")
      ->capture_default_str();
  sub->add_option("--iterations", o.iterations, "power iterations per pass")->capture_default_str();
  sub->add_option("--num-images", o.num_images, "draws per level for SM/DSM")->capture_default_str();
  sub->add_flag("--dsm", o.dsm, "use DSM instead of the exact SM in the bound (looser)");
  sub->add_option("--ode-sampler", o.sampler, "sampler for the coupling ODEs")->capture_default_str();
  sub->add_option("--ode-steps", o.ode_steps, "steps of the coupling ODEs (Karras grid)")->capture_default_str();
  sub->add_option("--ode-samples", o.ode_samples, "coupled samples (seeds 0..N-1; 0 skips)")->capture_default_str();
  sub->add_option("--limit", o.limit, "use the first N dataset items (0: all)");
  sub->add_option("--batch", o.batch, "batch size")->capture_default_str();
  sub->add_option("--seed", o.seed, "seed of the draws")->capture_default_str();
  sub->add_option("--out", o.out, "write the JSON report to this file (a killed run resumes from OUT.parts)");
  sub->add_flag("--overwrite", o.overwrite, "discard the finished levels of an earlier, unfinished run");
  sub->add_flag("--json", o.json, "print the JSON report on stdout");
  set_action(sub, [] { run(o); });
}

}  // namespace scoreflow::cli
