#pragma once
/// Negative log-likelihood bound of a discrete VP model along a K-step trajectory (Bao et al.
/// 2022, §4): prior KL + Σ step KLs + discretized-Gaussian decoder, in bits/dim, averaged over a
/// dataset with one noise draw per image per step.
#include <cstdint>
#include <functional>
#include <vector>

#include "scoreflow/analytic_dpm.h"
#include "scoreflow/conditioning.h"
#include "scoreflow/data.h"
#include "scoreflow/model.h"

namespace scoreflow {

struct NllJob {
  std::vector<int64_t> trajectory;  ///< 1 = τ_1 < … < τ_K = N (chain timesteps)
  ReverseVariance variance = ReverseVariance::analytic;
  int64_t num_images = 1000;
  int batch = 100;
  uint64_t seed = 0;
  bool clip_x0 = true;  ///< clamp x̂0 to the data range (as the paper's code does)
  /// A conditional model's inputs per image (item_conditions over num_images); empty otherwise.
  ItemConditions conditions;
};

struct NllResult {
  double bits_per_dim = 0, std_err = 0;      ///< mean over images and its standard error
  double prior = 0, steps = 0, decoder = 0;  ///< the three terms, bits/dim (means)
  std::vector<double> per_step;              ///< mean bits/dim of each step KL, trajectory order k = 1..K−1
  std::vector<double> variances;             ///< σ²_{τ_k|τ_{k+1}} used
  int64_t count = 0;
};

/// `gamma` may be null unless the variance is analytic. Data must lie on the 256-level grid of
/// [−1, 1] (uint8 images scaled); `on_batch(done, total)` reports progress.
NllResult compute_nll(const Model& model, const io::Dataset& data, const GammaTable* gamma, const NllJob& job,
                      const std::function<void(int64_t, int64_t)>& on_batch = {});

}  // namespace scoreflow
