#pragma once
/// Γ_t = E_{x0, ε}‖ε̂(x_t, t)‖²/d over a dataset (Bao et al. 2022, Eq. 8, ε convention), one noise
/// draw per image per timestep, resumable timestep by timestep. The chain and the Γ table it fills
/// are models/ (discrete_chain.h, gamma_table.h).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "scoreflow/analytic_dpm.h"
#include "scoreflow/conditioning.h"
#include "scoreflow/data.h"
#include "scoreflow/final_step.h"
#include "scoreflow/model.h"

namespace scoreflow {

/// A K-point trajectory by name: "even", "quadratic" (from the chain alone) or "optimal" (the DP
/// over Γ; needs `gamma`). Returns 1 = τ_1 < … < τ_K = N.
std::vector<int64_t> make_trajectory(const std::string& name, const DiscreteChain& chain, int64_t K,
                                     const GammaTable* gamma);
/// The σ grid a sampler runs for a trajectory: σ(τ_K) > … > σ(τ_1), then 0.
std::vector<double> trajectory_sigmas(const DiscreteChain& chain, const std::vector<int64_t>& trajectory);
/// The grid of `steps` steps along trajectory `name` under `final` (docs/samplers.md "Final step"):
/// zero is trajectory_sigmas of a K = steps trajectory; none and denoise take a K = steps + 1
/// trajectory and stop at σ(τ_1), the smallest discrete noise level on it, instead of stepping to 0.
std::vector<double> trajectory_grid(const std::string& name, const DiscreteChain& chain, int64_t steps,
                                    const GammaTable* gamma, FinalStep final);

struct GammaEstimation {
  std::vector<int64_t> timesteps;  ///< chain timesteps 1..N to estimate
  int64_t num_images = 1000;       ///< first images of the dataset
  int batch = 100;
  uint64_t seed = 0;  ///< noise for (t, batch b) comes from a generator seeded by (seed, t, b)
  /// A shard's share: batches [first_batch, end_batch) of the num_images/batch batches (end_batch
  /// −1: to the last). Batch b always holds images [b·batch, (b+1)·batch) and noise seeded by b,
  /// so shards see exactly what an unsharded run sees.
  int64_t first_batch = 0;
  int64_t end_batch = -1;
  /// A conditional model's inputs per image (item_conditions over num_images): image i uses row i,
  /// or the one shared row. Empty for models without conditions.
  ItemConditions conditions;
  /// Called with each finished batch's statistics (timestep t, batch b), for shard files.
  std::function<void(int64_t t, int64_t b, const GammaBatchStats&)> on_batch;
};

/// Estimates Γ for every timestep in `job.timesteps` that `table` does not hold yet (a timestep
/// whose batch range is empty is left unset), calling
/// `on_timestep(table, t, images_per_second)` after each finished timestep (for saving and progress).
void estimate_gamma(const Model& model, const io::Dataset& data, const GammaEstimation& job, GammaTable& table,
                    const std::function<void(const GammaTable&, int64_t, double)>& on_timestep = {});

/// Images/s of the network calls alone that `estimate_gamma` makes for `job` (same batch sizes and
/// σ's on one resident batch; no dataset reads, noise draws or read-backs), timed over every
/// timestep but the first, which warms the network up. The yardstick for the estimation pipeline.
double forward_throughput(const Model& model, const io::Dataset& data, const GammaEstimation& job);

}  // namespace scoreflow
