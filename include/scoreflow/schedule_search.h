#pragma once
/// Searched step schedules. GITS (Chen, Zhou, Wang, Chen, Lyu, "On the Trajectory Regularity of
/// ODE-based Diffusion Sampling", ICML 2024; reference code zju-pi/diff-sampler gits-main): a teacher
/// solves the PF-ODE on a fine candidate grid for a few hundred warm-up samples; the cost of jumping
/// from candidate i to candidate j is the distance between the student's step from the teacher's state
/// at i and the teacher's state at j, averaged over the samples; dynamic programming then picks the
/// coarse grid (first and last candidate fixed) with the least total cost for the student's steps.
#include <torch/types.h>

#include <functional>
#include <memory>
#include <vector>

#include "scoreflow/analytic_dpm.h"
#include "scoreflow/model.h"
#include "scoreflow/sampler.h"

namespace scoreflow {

struct GitsOptions {
  /// The fine grid σ_0 > … > σ_{M−1} > 0 and the final 0: the points a coarse grid is chosen from.
  std::vector<double> candidates;
  int steps = 0;             ///< coarse intervals (the student's steps for its NFE budget)
  int64_t warmup = 256;      ///< warm-up samples (teacher trajectories)
  uint64_t seed = 0;         ///< their initial noise: seeds seed, seed + 1, …, as `sample --seeds`
  int batch = 256;           ///< samples per denoiser call
  int teacher_substeps = 1;  ///< teacher steps per candidate interval (log-uniform; the last, into 0, is one step)
  torch::ScalarType dtype = torch::kFloat32;  ///< the state's dtype
};

/// (finished warm-up samples, total) after each batch.
using GitsProgress = std::function<void(int64_t done, int64_t total)>;

/// cost(i, j) for candidates 0 ≤ i < j ≤ M (index M: σ = 0): the mean over warm-up samples of
/// ‖x̂_j − x_j‖₂, x_j the teacher's state at candidate j and x̂_j the student's one step from the
/// teacher's x_i (its `sample` over the grid {σ_i, σ_j}: Euler for euler, the first, lower-order step
/// of a multistep method). Stored as StepCostMatrix nodes i + 1 → j + 1 (its nodes start at 1).
analytic::StepCostMatrix gits_cost_matrix(std::shared_ptr<const Model> model, const Sampler& student,
                                          const Sampler& teacher, const GitsOptions& options,
                                          const GitsProgress& progress = {});

struct GitsResult {
  std::vector<double> sigmas;    ///< the coarse grid σ_0 … 0 (options.steps intervals)
  std::vector<int64_t> indices;  ///< its points' positions in options.candidates
  double cost = 0;               ///< Σ of its steps' costs
};

/// The least-cost coarse grid of `steps` intervals from candidate 0 to the final 0 under `cost`
/// (analytic::least_cost_path, the Analytic-DPM trajectory DP).
GitsResult gits_select(const analytic::StepCostMatrix& cost, const std::vector<double>& candidates, int steps);

/// gits_cost_matrix, then gits_select. Throws Error for a stochastic student or teacher, a candidate grid
/// that is not strictly decreasing to 0, or steps outside [student's minimum, M].
GitsResult search_gits(std::shared_ptr<const Model> model, const Sampler& student, const Sampler& teacher,
                       const GitsOptions& options, const GitsProgress& progress = {});

}  // namespace scoreflow
