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
#include "scoreflow/nll.h"

namespace scoreflow::jobs {

/// The timesteps a Γ estimate covers: "all" (1..N of `chain`) or "K", K evenly spaced ones
/// (analytic::even_timesteps; 2 <= K <= N, the rest interpolated). Throws Error naming the field
/// timesteps and the value.
std::vector<int64_t> gamma_timesteps(const analytic::DiscreteChain& chain, const std::string& timesteps);

/// What a Γ file says about the job that made it: gamma_meta_for(model), the dataset and the
/// settings num_images, batch, seed, timesteps (as chosen: "all" or K) and the conditions'
/// fingerprint (conditional models only).
analytic::GammaMeta gamma_job_meta(const Model& model, const io::Dataset& data, const GammaEstimation& job,
                                   const std::string& timesteps);

/// A `kind` (even | quadratic | optimal) trajectory of `steps` timesteps: {trajectory, steps,
/// timesteps} and, with a Γ table, its cost and the even trajectory's (analytic::path_cost).
nlohmann::json trajectory_report(const analytic::DiscreteChain& chain, const std::string& kind, int64_t steps,
                                 const analytic::GammaTable* gamma);

/// An NLL result's fields: bits_per_dim, std_err, prior, steps_kl, decoder, per_step,
/// step_variances, num_images.
nlohmann::json to_json(const NllResult& r);

}  // namespace scoreflow::jobs
