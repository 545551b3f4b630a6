/// GITS (Chen et al., ICML 2024, §4): a per-step cost matrix from teacher trajectories and the
/// least-cost coarse grid by dynamic programming (include/scoreflow/schedule_search.h).
#include <torch/torch.h>

#include <cmath>
#include <limits>

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

/// Per sample, the distance of each row of `p` [B, d] from the line through `a` and `e` [B, d] (the
/// teacher's first and last states): the authors' trajectory deviation.
torch::Tensor deviation(const torch::Tensor& p, const torch::Tensor& a, const torch::Tensor& e) {
  const torch::Tensor u = (e - a) / (e - a).norm(2, 1, true).clamp_min(1e-300);
  const torch::Tensor to_end = e - p;
  return (to_end - (to_end * u).sum(1, true) * u).norm(2, 1);
}

}  // namespace

GitsMetric parse_gits_metric(const std::string& name) {
  if (name == "dev") return GitsMetric::Dev;
  if (name == "l2") return GitsMetric::L2;
  if (name == "l1") return GitsMetric::L1;
  fail(Field{"metric"}, " '", name, "' is unknown; valid: dev, l2, l1");
}

std::string gits_metric_name(GitsMetric metric) {
  switch (metric) {
    case GitsMetric::Dev:
      return "dev";
    case GitsMetric::L2:
      return "l2";
    case GitsMetric::L1:
      return "l1";
  }
  return "?";
}

StepCostMatrix gits_cost_matrix(std::shared_ptr<const Model> model, const Sampler& student, const Sampler& teacher,
                                const GitsOptions& o, const GitsProgress& progress, const io::Memo& memo) {
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
  // The warm-up samples' conditioning, checked before any network call (and before the memo).
  SampleJob job = o.conditioning;
  job.seeds.clear();
  for (int64_t s = 0; s < o.warmup; ++s) job.seeds.push_back(o.seed + static_cast<uint64_t>(s));
  check_job_conditioning(*model, job);
  torch::NoGradGuard no_grad;
  std::vector<double> sum(static_cast<size_t>((M + 1) * (M + 1)), 0.0);
  for (int64_t begin = 0; begin < o.warmup; begin += o.batch) {
    const int64_t end = std::min<int64_t>(o.warmup, begin + o.batch);
    // One batch's cost sums (float64, exact through the memo), added in batch order: a resumed run
    // adds what an uninterrupted one adds.
    const torch::Tensor batch_sum = io::memoize(memo, "gits-batch-" + std::to_string(begin), [&] {
      NoiseSource noise(std::vector<uint64_t>(job.seeds.begin() + begin, job.seeds.begin() + end));
      Denoiser denoise(model, batch_conditioning(job, begin, end - begin, model->device()));
      // Teacher trajectory: its state at every candidate.
      std::vector<torch::Tensor> x(static_cast<size_t>(M + 1));
      x[0] = (noise.randn(meta.shape) * c[0]).to(model->device(), o.dtype);
      for (int64_t i = 0; i < M; ++i)
        x[i + 1] = teacher.sample(denoise, x[i], teacher_interval(c[i], c[i + 1], o.teacher_substeps), noise);
      // One step from the teacher's state at i to every later candidate j, measured against x_j.
      auto flat = [](const torch::Tensor& t) { return t.to(torch::kFloat64).flatten(1); };
      const torch::Tensor first = flat(x[0]), last = flat(x[M]);
      std::vector<torch::Tensor> teacher_dev(static_cast<size_t>(M + 1));
      if (o.metric == GitsMetric::Dev)
        for (int64_t j = 1; j < M; ++j) teacher_dev[j] = deviation(flat(x[j]), first, last);
      // Each (i, j) sum stays on the model's device; one copy to the host per batch, not one sync per pair.
      torch::Tensor sums = torch::zeros({(M + 1) * (M + 1)}, x[0].options().dtype(torch::kFloat64));
      for (int64_t i = 0; i < M; ++i) {
        torch::Tensor derivative;  // the teacher's (x_i − D(x_i, σ_i))/σ_i, for the Euler steps
        if (!o.student_step) derivative = (x[i] - denoise(x[i], c[i])) / c[i];
        std::vector<torch::Tensor> row;
        for (int64_t j = i + 1; j <= M; ++j) {
          const torch::Tensor step =
              o.student_step ? student.sample(denoise, x[i], {c[i], c[j]}, noise) : x[i] + (c[j] - c[i]) * derivative;
          torch::Tensor err;
          switch (o.metric) {
            case GitsMetric::Dev:  // the teacher's own deviation is 0 at the end point
              err = deviation(flat(step), first, last);
              if (j < M) err = err - teacher_dev[j];
              break;
            case GitsMetric::L2:
              err = flat(step - x[j]).norm(2, 1);
              break;
            case GitsMetric::L1:
              err = flat(step - x[j]).abs().sum(1);
              break;
          }
          row.push_back(err.sum());
        }
        sums.narrow(0, i * (M + 1) + i + 1, M - i).copy_(torch::stack(row));
      }
      denoise.check_finite();
      return sums.cpu();
    });
    const torch::Tensor b = batch_sum.to(torch::kFloat64).contiguous();
    for (int64_t k = 0; k < (M + 1) * (M + 1); ++k) sum[k] += b.data_ptr<double>()[k];
    if (progress) progress(end, o.warmup);
  }
  StepCostMatrix cost(M + 1);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = i + 1; j <= M; ++j) cost.set(i + 1, j + 1, sum[i * (M + 1) + j] / static_cast<double>(o.warmup));
  return cost;
}

GitsResult gits_select(const StepCostMatrix& cost, const std::vector<double>& candidates, int steps, double coeff) {
  const int64_t M = static_cast<int64_t>(candidates.size()) - 1;
  if (cost.num_steps() != M + 1) fail("GITS: cost matrix has ", cost.num_steps(), " nodes for ", M + 1, " candidates");
  if (steps < 1 || steps > M)
    fail("GITS: steps = ", steps, " must be in [1, ", M, "] (the candidate grid has ", M, " intervals)");
  if (!(coeff > 0) || !std::isfinite(coeff)) fail(Field{"coeff"}, " must be positive and finite, got ", coeff);
  // best[k][n]: the least Σ coeff^m · cost over paths from candidate n to M in exactly k steps (m counted
  // from n's step); next[k][n] the candidate after n on it. The authors' `dp` recursion.
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(steps + 1, std::vector<double>(M + 1, inf));
  std::vector<std::vector<int64_t>> next(steps + 1, std::vector<int64_t>(M + 1, -1));
  for (int64_t n = 0; n < M; ++n) best[1][n] = cost(n + 1, M + 1), next[1][n] = M;
  for (int k = 2; k <= steps; ++k)
    for (int64_t n = 0; n < M; ++n)
      for (int64_t m = n + 1; m < M; ++m) {
        const double v = cost(n + 1, m + 1) + coeff * best[k - 1][m];
        if (v < best[k][n]) best[k][n] = v, next[k][n] = m;
      }
  if (!std::isfinite(best[steps][0])) fail("GITS: no finite-cost grid of ", steps, " steps");
  GitsResult r;
  r.cost = best[steps][0];
  for (int64_t n = 0, k = steps;; n = next[k--][n]) {
    r.indices.push_back(n);
    r.sigmas.push_back(candidates[static_cast<size_t>(n)]);
    if (k == 0) break;
  }
  return r;
}

GitsResult search_gits(std::shared_ptr<const Model> model, const Sampler& student, const Sampler& teacher,
                       const GitsOptions& o, const GitsProgress& progress, const io::Memo& memo) {
  check_candidates(o.candidates);
  if (!(o.coeff > 0) || !std::isfinite(o.coeff)) fail(Field{"coeff"}, " must be positive and finite, got ", o.coeff);
  const int M = static_cast<int>(o.candidates.size()) - 1;
  if (o.steps < student.min_steps() || o.steps > M)
    fail("GITS: steps = ", o.steps, " must be in [", student.min_steps(), ", ", M, "] (", student.name(),
         "'s minimum; the candidate grid's ", M, " intervals)");
  return gits_select(gits_cost_matrix(std::move(model), student, teacher, o, progress, memo), o.candidates, o.steps,
                     o.coeff);
}

}  // namespace scoreflow
