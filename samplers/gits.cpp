/// GITS (Chen et al., ICML 2024, §4): a per-step cost matrix from teacher trajectories and the
/// least-cost coarse grid by dynamic programming (include/scoreflow/schedule_search.h).
#include <torch/torch.h>

#include <cmath>

#include "scoreflow/error.h"
#include "scoreflow/schedule_search.h"

namespace scoreflow {

namespace {

void check_candidates(const std::vector<double>& c) {
  if (c.size() < 3)
    fail("GITS: the candidate grid needs at least 2 positive sigmas and the final 0, got ", c.size(), " points");
  if (c.back() != 0.0) fail("GITS: the candidate grid must end in 0, ends in ", c.back());
  for (size_t i = 0; i + 1 < c.size(); ++i)
    if (!(c[i] > 0) || !(c[i + 1] < c[i]) || !std::isfinite(c[i]))
      fail("GITS: candidate grid not strictly decreasing and positive at position ", i, " (", c[i], ", ", c[i + 1],
           ")");
}

/// The teacher's grid over one candidate interval: `n` log-uniform steps, one step into σ = 0.
std::vector<double> teacher_interval(double sigma, double sigma_next, int n) {
  if (sigma_next == 0.0 || n == 1) return {sigma, sigma_next};
  std::vector<double> g(n + 1);
  for (int k = 0; k <= n; ++k) g[k] = sigma * std::pow(sigma_next / sigma, double(k) / n);
  g[n] = sigma_next;  // exactly the candidate
  return g;
}

}  // namespace

analytic::StepCostMatrix gits_cost_matrix(std::shared_ptr<const Model> model, const Sampler& student,
                                          const Sampler& teacher, const GitsOptions& o, const GitsProgress& progress) {
  const std::vector<double>& c = o.candidates;
  check_candidates(c);
  if (student.stochastic() || teacher.stochastic())
    fail("GITS searches grids for ODE solvers; ", student.stochastic() ? student.name() : teacher.name(),
         " is stochastic");
  if (o.warmup < 1) fail("GITS: warmup must be >= 1, got ", o.warmup);
  if (o.batch < 1) fail("GITS: batch must be >= 1, got ", o.batch);
  if (o.teacher_substeps < 1) fail("GITS: teacher_substeps must be >= 1, got ", o.teacher_substeps);
  const int64_t M = static_cast<int64_t>(c.size()) - 1;  // candidate M is σ = 0
  const ModelMetadata& meta = model->metadata();
  torch::NoGradGuard no_grad;
  std::vector<double> sum(static_cast<size_t>((M + 1) * (M + 1)), 0.0);
  for (int64_t begin = 0; begin < o.warmup; begin += o.batch) {
    const int64_t end = std::min<int64_t>(o.warmup, begin + o.batch);
    std::vector<uint64_t> seeds;
    for (int64_t s = begin; s < end; ++s) seeds.push_back(o.seed + static_cast<uint64_t>(s));
    NoiseSource noise(seeds);
    Denoiser denoise(model);
    // Teacher trajectory: its state at every candidate.
    std::vector<torch::Tensor> x(static_cast<size_t>(M + 1));
    x[0] = (noise.randn(meta.shape) * c[0]).to(model->device(), o.dtype);
    for (int64_t i = 0; i < M; ++i)
      x[i + 1] = teacher.sample(denoise, x[i], teacher_interval(c[i], c[i + 1], o.teacher_substeps), noise);
    // Student: one step from the teacher's state at i to every later candidate j.
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = i + 1; j <= M; ++j) {
        const torch::Tensor step = student.sample(denoise, x[i], {c[i], c[j]}, noise);
        const double err = (step - x[j]).to(torch::kFloat64).flatten(1).norm(2, 1).sum().item<double>();
        sum[i * (M + 1) + j] += err;
      }
    denoise.check_finite();
    if (progress) progress(end, o.warmup);
  }
  analytic::StepCostMatrix cost(M + 1);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = i + 1; j <= M; ++j) cost.set(i + 1, j + 1, sum[i * (M + 1) + j] / static_cast<double>(o.warmup));
  return cost;
}

GitsResult gits_select(const analytic::StepCostMatrix& cost, const std::vector<double>& candidates, int steps) {
  const int64_t M = static_cast<int64_t>(candidates.size()) - 1;
  if (cost.num_steps() != M + 1) fail("GITS: cost matrix has ", cost.num_steps(), " nodes for ", M + 1, " candidates");
  if (steps < 1 || steps > M)
    fail("GITS: steps = ", steps, " must be in [1, ", M, "] (the candidate grid has ", M, " intervals)");
  const std::vector<int64_t> path = analytic::least_cost_path(cost, steps + 1);
  GitsResult r;
  for (int64_t node : path) {
    r.indices.push_back(node - 1);
    r.sigmas.push_back(candidates[static_cast<size_t>(node - 1)]);
  }
  r.cost = analytic::path_cost(cost, path);
  return r;
}

GitsResult search_gits(std::shared_ptr<const Model> model, const Sampler& student, const Sampler& teacher,
                       const GitsOptions& o, const GitsProgress& progress) {
  check_candidates(o.candidates);
  const int M = static_cast<int>(o.candidates.size()) - 1;
  if (o.steps < student.min_steps() || o.steps > M)
    fail("GITS: steps = ", o.steps, " must be in [", student.min_steps(), ", ", M, "] (", student.name(),
         "'s minimum; the candidate grid's ", M, " intervals)");
  return gits_select(gits_cost_matrix(std::move(model), student, teacher, o, progress), o.candidates, o.steps);
}

}  // namespace scoreflow
