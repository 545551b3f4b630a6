// Analytic-DPM runs from plain settings (scoreflow/jobs/analytic.h).
#include "scoreflow/jobs/analytic.h"

#include <cstdio>

#include "scoreflow/error.h"

namespace scoreflow::jobs {

std::vector<int64_t> gamma_timesteps(const DiscreteChain& chain, const std::string& timesteps) {
  const int64_t n = chain.num_steps();
  std::vector<int64_t> out;
  if (timesteps == "all") {
    for (int64_t t = 1; t <= n; ++t) out.push_back(t);
    return out;
  }
  int64_t k = 0;
  try {
    k = std::stoll(timesteps);
  } catch (const std::exception&) {
    fail(Field{"timesteps"}, " '", timesteps, "' is not 'all' or a number");
  }
  if (k < 2 || k > n) fail(Field{"timesteps"}, " must be in [2, ", n, "], got ", k);
  return even_timesteps(n, k);
}

GammaMeta gamma_job_meta(const Model& model, const io::Dataset& data, const GammaEstimation& job,
                         const std::string& timesteps) {
  GammaMeta meta = gamma_meta_for(model);
  meta.dataset = data.describe();
  meta.settings = {{"num_images", std::to_string(job.num_images)},
                   {"batch", std::to_string(job.batch)},
                   {"seed", std::to_string(job.seed)},
                   {"timesteps", timesteps}};
  if (!job.conditions.empty()) meta.settings["conditions"] = job.conditions.fingerprint();
  return meta;
}

nlohmann::json trajectory_report(const DiscreteChain& chain, const std::string& kind, int64_t steps,
                                 const GammaTable* gamma) {
  const std::vector<int64_t> traj = make_trajectory(kind, chain, steps, gamma);
  nlohmann::json doc = {{"trajectory", kind}, {"steps", steps}, {"timesteps", traj}};
  if (gamma) {
    const auto cost = trajectory_cost(chain, gamma->dense());
    doc["cost"] = path_cost(cost, traj);
    doc["even_cost"] = path_cost(cost, even_timesteps(chain.num_steps(), steps));
  }
  return doc;
}

nlohmann::json to_json(const NllResult& r) {
  return {{"bits_per_dim", r.bits_per_dim},
          {"std_err", r.std_err},
          {"prior", r.prior},
          {"steps_kl", r.steps},
          {"decoder", r.decoder},
          {"per_step", r.per_step},
          {"step_variances", r.variances},
          {"num_images", r.count}};
}

std::string trajectory_text(const nlohmann::json& report) {
  std::string out;
  for (int64_t t : report.at("timesteps").get<std::vector<int64_t>>())
    out += (out.empty() ? "" : " ") + std::to_string(t);
  out += "\n";
  if (report.contains("cost")) {
    char line[128];
    std::snprintf(line, sizeof line, "cost %.6f (even: %.6f)\n", report.at("cost").get<double>(),
                  report.at("even_cost").get<double>());
    out += line;
  }
  return out;
}

nlohmann::json nll_report(const NllResult& r, const NllJob& job, const std::string& kind, const std::string& variance) {
  nlohmann::json doc = to_json(r);
  doc.update({{"command", "nll"}, {"trajectory", kind}, {"timesteps", job.trajectory}, {"variance", variance}});
  return doc;
}

std::string nll_text(const NllResult& r, const std::string& kind, int64_t steps, const std::string& variance) {
  char line[512];
  std::snprintf(line, sizeof line,
                "%.4f +- %.4f bits/dim (prior %.4f, steps %.4f, decoder %.4f; K=%lld %s, %s variance, %lld images)\n",
                r.bits_per_dim, r.std_err, r.prior, r.steps, r.decoder, static_cast<long long>(steps), kind.c_str(),
                variance.c_str(), static_cast<long long>(r.count));
  return line;
}

nlohmann::json gamma_forward_report(const Model& model, const GammaEstimation& job, double images_per_second) {
  return {{"command", "estimate-gamma"},
          {"mode", "forward-only"},
          {"model", model.name()},
          {"device", model.device().str()},
          {"timesteps", job.timesteps.size()},
          {"num_images", job.num_images},
          {"batch", job.batch},
          {"images_per_second", images_per_second}};
}

nlohmann::json gamma_report(const Model& model, const io::Dataset& data, const GammaEstimation& job,
                            const GammaJobOptions& options, const GammaJobResult& r) {
  nlohmann::json doc = {{"command", "estimate-gamma"},       {"model", model.name()},
                        {"dataset", data.describe()},        {"out", r.path},
                        {"timesteps", job.timesteps.size()}, {"num_images", job.num_images},
                        {"resumed_timesteps", r.resumed}};
  if (options.shard.sharded()) {
    doc["shard"] = options.shard.to_json();
    doc["image_range"] = {r.image_range.first, r.image_range.second};
  } else {
    doc["clipped"] = r.table->num_clipped();
    doc["device"] = model.device().str();
    doc["batch"] = job.batch;
    // Steady-state rate: the first timestep computed (network warm-up) left out, as forward-only.
    doc["images_per_second"] = r.images_per_second;
  }
  return doc;
}

}  // namespace scoreflow::jobs
