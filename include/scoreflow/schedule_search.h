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
#include <string>
#include <vector>

#include "scoreflow/analytic_dpm.h"
#include "scoreflow/checkpoint.h"
#include "scoreflow/model.h"
#include "scoreflow/run.h"
#include "scoreflow/sampler.h"

namespace scoreflow {

/// How a student step's distance to the teacher is measured (the authors' `--metric`).
enum class GitsMetric {
  Dev,  ///< trajectory deviation: the step's distance from the straight line through the teacher's first
        ///< and last states, minus the teacher's own at that candidate (the authors' default)
  L2,   ///< ‖x̂_j − x_j‖₂
  L1,   ///< ‖x̂_j − x_j‖₁
};
/// "dev", "l2" or "l1"; throws Error naming the field `metric` otherwise.
GitsMetric parse_gits_metric(const std::string& name);
std::string gits_metric_name(GitsMetric metric);

struct GitsOptions {
  /// The fine grid σ_0 > … > σ_{M−1} > 0 and the final 0: the points a coarse grid is chosen from.
  std::vector<double> candidates;
  int steps = 0;             ///< coarse intervals (the student's steps for its NFE budget)
  int64_t warmup = 256;      ///< warm-up samples (teacher trajectories)
  uint64_t seed = 0;         ///< their initial noise: seeds seed, seed + 1, …, as `sample --seeds`
  int batch = 256;           ///< samples per denoiser call
  int teacher_substeps = 1;  ///< teacher steps per candidate interval (log-uniform; the last, into 0, is one step)
  torch::ScalarType dtype = torch::kFloat32;  ///< the state's dtype
  GitsMetric metric = GitsMetric::Dev;        ///< the authors' default
  /// The DP's weight on the rest of the path: a grid's objective is Σ_k coeff^k · cost(step k),
  /// k = 0 for the first step (the authors' `--coeff`, default 1.15; 1 = the plain sum).
  double coeff = 1.15;
  /// false (the authors' code): the cost of i → j is one Euler step with the teacher's derivative at
  /// x_i, for every student. true: the student's own one-step `sample` over {σ_i, σ_j}.
  bool student_step = false;
  /// The warm-up samples' conditioning, as a sampling job gives it (docs/design.md §3): `labels`
  /// and `cond_rows` hold one entry per warm-up sample (sample k, seed seed + k, uses entry k, as
  /// `sample` gives its k-th seed), with `cond`, `uncond`, `guidance` and the guidance interval and
  /// rescale. Only those fields are read. Empty (the default) for a model without conditions; a
  /// conditional model needs its tables (e.g. use_unconditional_input). Checked (check_job_conditioning)
  /// before any network call; every denoiser the search builds gets its samples' Conditioning.
  SampleJob conditioning;
};

/// (finished warm-up samples, total) after each batch.
using GitsProgress = std::function<void(int64_t done, int64_t total)>;

/// cost(i, j) for candidates 0 ≤ i < j ≤ M (index M: σ = 0): the mean over warm-up samples of the
/// metric between x̂_j and x_j, x_j the teacher's state at candidate j and x̂_j one step from the
/// teacher's x_i: Euler with the teacher's derivative (x_i − D(x_i, σ_i))/σ_i, or with
/// `student_step` the student's `sample` over the grid {σ_i, σ_j} (the first, lower-order step of a
/// multistep method). Stored as StepCostMatrix nodes i + 1 → j + 1 (its nodes start at 1). Each
/// warm-up batch's sums go through `memo` ("gits-batch-<first sample>"), so a run over the memo a killed
/// run left redoes only the unfinished batches and returns exactly what an uninterrupted run returns.
StepCostMatrix gits_cost_matrix(std::shared_ptr<const Model> model, const Sampler& student, const Sampler& teacher,
                                const GitsOptions& options, const GitsProgress& progress = {},
                                const io::Memo& memo = {});

struct GitsResult {
  std::vector<double> sigmas;    ///< the coarse grid σ_0 … 0 (options.steps intervals)
  std::vector<int64_t> indices;  ///< its points' positions in options.candidates
  double cost = 0;               ///< its objective, Σ_k coeff^k · cost(step k)
};

/// The coarse grid of `steps` intervals from candidate 0 to the final 0 with the least
/// Σ_k coeff^k · cost(step k), by dynamic programming over (candidate, steps left) as the authors' `dp`.
GitsResult gits_select(const StepCostMatrix& cost, const std::vector<double>& candidates, int steps,
                       double coeff = 1.0);

/// gits_cost_matrix, then gits_select. Throws Error for a stochastic student or teacher, a candidate grid
/// that is not strictly decreasing to 0, or steps outside [student's minimum, M].
GitsResult search_gits(std::shared_ptr<const Model> model, const Sampler& student, const Sampler& teacher,
                       const GitsOptions& options, const GitsProgress& progress = {}, const io::Memo& memo = {});

}  // namespace scoreflow
