// eval score-matching and eval wbound as jobs (scoreflow/jobs/eval.h): settings, resume, report.
#include "scoreflow/jobs/eval.h"

#include <chrono>
#include <cmath>
#include <optional>

#include "io/fsutil.h"
#include "scoreflow/error.h"
#include "scoreflow/jobs/clock.h"

namespace scoreflow::jobs {
namespace {

/// The chunk store of an evaluation whose report is output.out, or nothing without one.
std::optional<io::ChunkStore> open_store(const EvalOutput& output, io::Settings settings) {
  if (output.out.empty()) return std::nullopt;
  return std::optional<io::ChunkStore>(std::in_place, chunk_folder(output.out), std::move(settings), output.overwrite,
                                       output.out_field);
}

/// Writes the report to output.out, notes what was resumed and removes the chunk store.
int64_t finish(const EvalOutput& output, const nlohmann::json& report, std::optional<io::ChunkStore>& store) {
  if (!output.out.empty()) io::write_file_atomic(output.out, report.dump(2) + "\n");
  if (!store) return 0;
  const int64_t resumed = store->loaded();
  note_resumed(store->dir(), resumed, "chunks");
  store->remove();
  return resumed;
}

/// What every evaluation against a target records: the model, the conditions, the data.
io::Settings target_settings(const Model& model, const ItemConditions& conditions, const std::string& data,
                             int64_t limit) {
  io::Settings settings = model_settings(model);
  if (!conditions.empty()) settings.push_back({"conditions", conditions.fingerprint()});
  settings.insert(settings.end(), {{"data", io::path_fingerprint(data)}, {"limit", std::to_string(limit)}});
  return settings;
}

void check_common(const std::string& data, const std::vector<double>& sigmas) {
  if (data.empty()) fail(Field{"data"}, " is empty: give a dataset or builtin target");
  for (double s : sigmas)
    if (!(s > 0)) fail(Field{"sigmas"}, ": noise levels must be > 0, got ", s);
}

}  // namespace

std::vector<double> evaluation_levels(const std::vector<double>& sigmas, int timesteps, const NoiseSchedule& schedule) {
  if (sigmas.empty()) return eval::evaluation_sigmas(schedule, timesteps);
  for (double s : sigmas)
    if (!(s > 0)) fail(Field{"sigmas"}, ": noise levels must be > 0, got ", s);
  return sigmas;
}

ScoreMatchingJobResult score_matching_job(std::shared_ptr<const Model> model, const ScoreMatchingJob& job) {
  const auto start = std::chrono::steady_clock::now();
  check_common(job.data, job.sigmas);
  io::check_outputs({{job.output.out_field, job.output.out}});
  const ModelMetadata& meta = model->metadata();
  eval::ExactTarget target(job.data, model, job.limit);
  eval::ScoreMatchingOptions sm;
  if (job.conditions) sm.conditions = job.conditions(*model, target.size());
  sm.sigmas = evaluation_levels(job.sigmas, job.timesteps, meta.schedule);
  sm.num_images = job.num_images;
  sm.batch = job.batch;
  sm.seed = job.seed;
  io::Settings settings = target_settings(*model, sm.conditions, job.data, job.limit);
  settings.insert(settings.end(), {{"sigmas", exact_list(sm.sigmas)},
                                   {"num images", std::to_string(job.num_images)},
                                   {"batch", std::to_string(job.batch)},
                                   {"seed", std::to_string(job.seed)}});
  auto store = open_store(job.output, std::move(settings));
  ScoreMatchingJobResult r;
  r.model = model->name();
  r.target = target.describe();
  r.rows = eval::score_matching(*model, target, sm, store ? store->memo() : io::Memo{});
  r.times = eval::network_times(meta.schedule, sm.sigmas);
  nlohmann::json doc = {{"command", "eval score-matching"},
                        {"model", r.model},
                        {"model_summary", model->summary()},
                        {"target", r.target},
                        {"num_images", job.num_images},
                        {"seed", job.seed},
                        {"units",
                         "eps: DSM = E|eps_theta - eps|^2, SM = E|eps_theta - eps*|^2 summed over the d values "
                         "of a sample; per_dim = /d; score units (sigma-space) = eps units / sigma^2. For VP "
                         "models x = x_t/alpha = x0 + sigma*eps, so this eps is the VP eps."}};
  nlohmann::json list = nlohmann::json::array();
  for (size_t k = 0; k < r.rows.size(); ++k) {
    const auto& row = r.rows[k];
    const double d = static_cast<double>(row.d), s2 = row.sigma * row.sigma;
    list.push_back({{"sigma", row.sigma},
                    {"t", r.times[k]},
                    {"d", row.d},
                    {"dsm", row.dsm},
                    {"dsm_se", row.dsm_se},
                    {"dsm_per_dim", row.dsm / d},
                    {"dsm_score_units", row.dsm / s2},
                    {"sm", row.sm},
                    {"sm_se", row.sm_se},
                    {"sm_per_dim", row.sm / d},
                    {"sm_score_units", row.sm / s2},
                    {"gamma_star", row.gamma_star},
                    {"dsm_minus_sm", row.gap},
                    {"d_one_minus_gamma_star", row.gap_expected},
                    {"identity_residual", row.residual},
                    {"identity_residual_se", row.residual_se}});
  }
  doc["rows"] = list;
  doc["wall_seconds"] = seconds_since(start);
  r.report = doc;
  r.resumed = finish(job.output, doc, store);
  return r;
}

WBoundJobResult wbound_job(std::shared_ptr<const Model> model, const WBoundJob& job) {
  const auto start = std::chrono::steady_clock::now();
  check_common(job.data, job.sigmas);
  const eval::WBoundOptions& o = job.options;
  if (o.iterations < 1) fail(Field{"iterations"}, " must be >= 1, got ", o.iterations);
  if (o.ode_samples > 0 && o.ode_steps < 1) fail(Field{"ode_steps"}, " must be >= 1, got ", o.ode_steps);
  io::check_outputs({{job.output.out_field, job.output.out}});
  eval::ExactTarget target(job.data, model, job.limit);
  eval::WBoundOptions w = o;
  w.conditions = job.conditions ? job.conditions(*model, target.size()) : ItemConditions{};
  w.sigmas = evaluation_levels(job.sigmas, job.timesteps, model->metadata().schedule);
  // Builtins compute in float64 anyway; TorchScript networks take float32.
  w.dtype = model->name().rfind("builtin:", 0) == 0 ? torch::kFloat64 : torch::kFloat32;
  io::Settings settings = target_settings(*model, w.conditions, job.data, job.limit);
  settings.insert(settings.end(), {{"sigmas", exact_list(w.sigmas)},
                                   {"points", std::to_string(w.lipschitz_points)},
                                   {"iterations", std::to_string(w.iterations)},
                                   {"num images", std::to_string(w.num_images)},
                                   {"ode sampler", w.ode_sampler},
                                   {"ode steps", std::to_string(w.ode_steps)},
                                   {"ode samples", std::to_string(w.ode_samples)},
                                   {"batch", std::to_string(w.batch)},
                                   {"seed", std::to_string(w.seed)}});
  auto store = open_store(job.output, std::move(settings));
  WBoundJobResult res;
  res.model = model->name();
  res.target = target.describe();
  res.bound = eval::wasserstein_bound(model, target, w, store ? store->memo() : io::Memo{});
  const eval::WBoundReport& r = res.bound;
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
      {"model", res.model},
      {"target", res.target},
      {"lipschitz",
       {{"estimate", "sample-based: power iteration (" + std::to_string(w.iterations) +
                         " its) on autograd JVP/VJP of the sigma-space score at " + std::to_string(w.lipschitz_points) +
                         " data-noised points per sigma; max/mean over points (a lower estimate of the sup)"}}},
      {"rows", rows},
      {"kwon",
       {{"form",
         "W2 <= int_0^sigma_max 2 I(s) sqrt(err_eps(s)) ds + I(sigma_max) W2(p_T, q_T), I(s) = exp int_0^s 2r L_s(r) "
         "dr "
         "(VE in sigma-space: L_f = 0, g^2 = 2 sigma); trapezoid in log sigma"},
        {"score_error", w.use_dsm ? "DSM (looser: DSM >= SM)" : "exact SM"},
        {"integral", r.kwon_integral},
        {"prior_w2", r.prior_w2},
        {"prior_w2_kind", r.prior_w2_kind},
        {"I_sigma_max", std::exp(r.rows.back().log_i)},
        {"bound", r.kwon_bound}}},
      {"su_coupling",
       {{"form", "sqrt(E|x0 - y0|^2): model PF-ODE vs exact PF-ODE from the same noise (" + w.ode_sampler + ", " +
                     std::to_string(w.ode_steps) + " Karras steps)"},
        {"value", r.su_coupling},
        {"se", r.su_coupling_se},
        {"samples", w.ode_samples},
        {"nfe", r.su_nfe}}},
      {"wall_seconds", seconds_since(start)}};
  if (r.has_true_w2) doc["true_w2"] = r.true_w2;
  if (r.has_gelbrich) doc["gelbrich_w2_lower_bound"] = r.gelbrich_w2;
  res.report = doc;
  res.resumed = finish(job.output, doc, store);
  return res;
}

}  // namespace scoreflow::jobs
