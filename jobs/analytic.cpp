// Analytic-DPM runs from plain settings (scoreflow/jobs/analytic.h).
#include "scoreflow/jobs/analytic.h"

#include "scoreflow/error.h"

namespace scoreflow::jobs {

std::vector<int64_t> gamma_timesteps(const analytic::DiscreteChain& chain, const std::string& timesteps) {
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
  return analytic::even_timesteps(n, k);
}

analytic::GammaMeta gamma_job_meta(const Model& model, const io::Dataset& data, const GammaEstimation& job,
                                   const std::string& timesteps) {
  analytic::GammaMeta meta = gamma_meta_for(model);
  meta.dataset = data.describe();
  meta.settings = {{"num_images", std::to_string(job.num_images)},
                   {"batch", std::to_string(job.batch)},
                   {"seed", std::to_string(job.seed)},
                   {"timesteps", timesteps}};
  if (!job.conditions.empty()) meta.settings["conditions"] = job.conditions.fingerprint();
  return meta;
}

nlohmann::json trajectory_report(const analytic::DiscreteChain& chain, const std::string& kind, int64_t steps,
                                 const analytic::GammaTable* gamma) {
  const std::vector<int64_t> traj = make_trajectory(kind, chain, steps, gamma);
  nlohmann::json doc = {{"trajectory", kind}, {"steps", steps}, {"timesteps", traj}};
  if (gamma) {
    const auto cost = analytic::trajectory_cost(chain, gamma->dense());
    doc["cost"] = analytic::path_cost(cost, traj);
    doc["even_cost"] = analytic::path_cost(cost, analytic::even_timesteps(chain.num_steps(), steps));
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

}  // namespace scoreflow::jobs
