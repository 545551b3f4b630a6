#pragma once
/// The Analytic-DPM runs as library calls (`scoreflow estimate-gamma | trajectory | nll`): the
/// choices their front ends make from plain settings, and their reports as JSON.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "scoreflow/data.h"
#include "scoreflow/discrete_chain.h"
#include "scoreflow/gamma_estimation.h"
#include "scoreflow/gamma_table.h"
#include "scoreflow/jobs.h"
#include "scoreflow/nll.h"

namespace scoreflow::jobs {

/// The timesteps a Γ estimate covers: "all" (1..N of `chain`) or "K", K evenly spaced ones
/// (even_timesteps; 2 <= K <= N, the rest interpolated). Throws Error naming the field
/// timesteps and the value.
std::vector<int64_t> gamma_timesteps(const DiscreteChain& chain, const std::string& timesteps);

/// What a Γ file says about the job that made it: gamma_meta_for(model), the dataset and the
/// settings num_images, batch, seed, timesteps (as chosen: "all" or K) and the conditions'
/// fingerprint (conditional models only).
GammaMeta gamma_job_meta(const Model& model, const io::Dataset& data, const GammaEstimation& job,
                         const std::string& timesteps);

/// A `kind` (even | quadratic | optimal) trajectory of `steps` timesteps: {trajectory, steps,
/// timesteps} and, with a Γ table, its cost and the even trajectory's (path_cost).
nlohmann::json trajectory_report(const DiscreteChain& chain, const std::string& kind, int64_t steps,
                                 const GammaTable* gamma);

/// An NLL result's fields: bits_per_dim, std_err, prior, steps_kl, decoder, per_step,
/// step_variances, num_images.
nlohmann::json to_json(const NllResult& r);

/// A trajectory_report as text: its timesteps on one line and, with a cost, "cost C (even: E)".
std::string trajectory_text(const nlohmann::json& report);

/// An NLL run as `scoreflow nll --json` reports it: to_json(r) with the command, the trajectory's
/// kind and timesteps and the variance as named; the caller adds the model, dataset and wall time.
nlohmann::json nll_report(const NllResult& r, const NllJob& job, const std::string& kind, const std::string& variance);

/// One line: "B +- E bits/dim (prior P, steps S, decoder D; K=STEPS KIND, VARIANCE variance, N images)".
std::string nll_text(const NllResult& r, const std::string& kind, int64_t steps, const std::string& variance);

/// A forward-only Γ run (forward_throughput) as `scoreflow estimate-gamma --forward-only --json`
/// reports it: mode, model, device, timesteps, num_images, batch, images_per_second.
nlohmann::json gamma_forward_report(const Model& model, const GammaEstimation& job, double images_per_second);

/// A finished estimate_gamma_job as `scoreflow estimate-gamma --json` reports it: model, dataset,
/// the file, timesteps, num_images, resumed_timesteps and, for a shard, the shard and its
/// image_range, else the clipped count, device, batch and steady-state images_per_second. The
/// caller adds its wall time.
nlohmann::json gamma_report(const Model& model, const io::Dataset& data, const GammaEstimation& job,
                            const GammaJobOptions& options, const GammaJobResult& result);

}  // namespace scoreflow::jobs
