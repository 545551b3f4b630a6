// GITS: the dynamic programme against brute force over every coarse grid, and the whole search on the
// exact Gaussian ODE, where each step's cost is known in closed form.
#include "scoreflow/schedule_search.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "scoreflow/error.h"
#include "scoreflow/model.h"
#include "scoreflow/registry.h"
#include "scoreflow/sigmas.h"

using namespace scoreflow;

namespace {

/// The path 0 = i_0 < … < i_K = M minimising Σ_k coeff^k · cost(i_k, i_{k+1}), by enumerating every
/// subset of K − 1 interior candidates.
std::vector<int64_t> brute_force(const std::function<double(int64_t, int64_t)>& cost, int64_t M, int K,
                                 double coeff = 1.0) {
  std::vector<int64_t> best, cur{0};
  double best_cost = std::numeric_limits<double>::infinity();
  std::function<void(int64_t, double, double)> walk = [&](int64_t from, double acc, double weight) {
    if (static_cast<int>(cur.size()) == K) {
      const double total = acc + weight * cost(from, M);
      if (total < best_cost) best_cost = total, best = cur, best.push_back(M);
      return;
    }
    for (int64_t j = from + 1; j < M; ++j) {
      cur.push_back(j);
      walk(j, acc + weight * cost(from, j), weight * coeff);
      cur.pop_back();
    }
  };
  walk(0, 0.0, 1.0);
  return best;
}

}  // namespace

TEST(Gits, DynamicProgrammeFindsTheBruteForceOptimum) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int64_t M = 9;
  std::vector<double> candidates;
  for (int64_t i = 0; i < M; ++i) candidates.push_back(std::pow(0.5, double(i)));
  candidates.push_back(0.0);
  for (int trial = 0; trial < 20; ++trial) {
    StepCostMatrix cost(M + 1);
    std::vector<double> c((M + 1) * (M + 1));
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = i + 1; j <= M; ++j) cost.set(i + 1, j + 1, c[i * (M + 1) + j] = u(rng) * (j - i));
    for (int steps = 1; steps <= 5; ++steps)
      for (double coeff : {1.0, 1.15, 0.8}) {  // 1.15: the authors' default weight
        const GitsResult r = gits_select(cost, candidates, steps, coeff);
        const auto want = brute_force([&](int64_t i, int64_t j) { return c[i * (M + 1) + j]; }, M, steps, coeff);
        EXPECT_EQ(r.indices, want) << "trial " << trial << " steps " << steps << " coeff " << coeff;
        ASSERT_EQ(r.sigmas.size(), static_cast<size_t>(steps + 1));
        EXPECT_EQ(r.sigmas.back(), 0.0);
      }
  }
}

// Data N(μ, v) per element, EDM schedule: the PF-ODE solution is x(σ) − μ = (x(σ_0) − μ)·r(σ)/r(σ_0) with
// r(σ) = sqrt(v + σ²). Euler from the exact x_i to σ_j gives (x_i − μ)(1 + (σ_j − σ_i)σ_i/r_i²); the step
// into 0 (teacher and student alike, the last candidate interval) is x ← D = μ + v/r²·(x − μ). So each
// cost is E‖x_0 − μ‖/r_0 times a closed form, and the optimal coarse grid follows from the closed form.
TEST(Gits, OnTheExactGaussianOdeEulerCostsAndGridAreTheClosedForms) {
  const double sd = 0.5, v = sd * sd;  // mean 0.3 drops out of every cost
  auto model = open_model("builtin:gaussian:shape=3,mean=0.3,std=0.5");
  GitsOptions o;
  o.candidates = make_sigmas("karras", 8, model->metadata().schedule, KeyValueArgs(""));
  o.steps = 3;
  o.warmup = 48;
  o.batch = 16;
  o.teacher_substeps = 64;  // Heun, near-exact between candidates
  o.dtype = torch::kFloat64;
  o.metric = GitsMetric::L2;  // the closed form is for the plain distance and sum
  o.coeff = 1.0;
  const auto& s = o.candidates;
  const int64_t M = static_cast<int64_t>(s.size()) - 1;
  auto r = [&](int64_t i) { return std::sqrt(v + s[i] * s[i]); };
  auto exact = [&](int64_t i, int64_t j) {
    if (j < M) return r(i) * std::abs(1 + (s[j] - s[i]) * s[i] / (r(i) * r(i)) - r(j) / r(i));
    return r(i) * std::abs(v / (r(i) * r(i)) - v / (r(i) * r(M - 1)));
  };
  auto student = make_sampler("euler"), teacher = make_sampler("heun");
  const StepCostMatrix cost = gits_cost_matrix(model, *student, *teacher, o);
  const double scale = cost(1, M + 1) / exact(0, M);  // E‖x_0 − μ‖/r_0
  double largest = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = i + 1; j <= M; ++j) largest = std::max(largest, exact(i, j));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = i + 1; j <= M; ++j)
      EXPECT_NEAR(cost(i + 1, j + 1), scale * exact(i, j), 1e-4 * scale * largest) << "step " << i << " -> " << j;
  EXPECT_EQ(cost(M, M + 1), 0.0);  // σ_min → 0 is the same denoiser call for both
  for (int steps = 2; steps <= 4; ++steps) {
    o.steps = steps;
    const GitsResult g = gits_select(cost, o.candidates, steps);
    EXPECT_EQ(g.indices, brute_force(exact, M, steps)) << "steps " << steps;
  }
  const GitsResult full = search_gits(model, *student, *teacher, o);
  EXPECT_EQ(full.indices, brute_force(exact, M, o.steps));
}

TEST(Gits, RefusesStochasticSolversAndImpossibleBudgets) {
  auto model = open_model("builtin:gaussian:shape=2");
  GitsOptions o;
  o.candidates = make_sigmas("karras", 5, model->metadata().schedule, KeyValueArgs(""));
  o.warmup = 4;
  o.steps = 6;  // more than the 5 candidate intervals
  auto euler = make_sampler("euler"), heun = make_sampler("heun"), sde = make_sampler("euler_maruyama");
  EXPECT_THROW(search_gits(model, *euler, *heun, o), Error);
  o.steps = 3;
  EXPECT_THROW(search_gits(model, *sde, *heun, o), Error);
  o.candidates.pop_back();  // no final 0
  EXPECT_THROW(search_gits(model, *euler, *heun, o), Error);
}

// The authors' default cost, the trajectory deviation: how far the Euler step from x_i lands from the
// straight line through the teacher's first and last states, less the teacher's own distance at σ_j.
// Checked against a direct per-sample computation in doubles on a curved 2-D trajectory, and on the
// Gaussian, whose PF-ODE trajectories are straight lines, where every cost vanishes.
TEST(Gits, DeviationCostIsTheDistanceFromTheTeachersChord) {
  auto model = open_model("builtin:gmm:shape=2");
  GitsOptions o;
  o.candidates = make_sigmas("karras", 5, model->metadata().schedule, KeyValueArgs(""));
  o.warmup = 6;
  o.batch = 4;  // two batches, the second partial
  o.dtype = torch::kFloat64;
  auto euler = make_sampler("euler"), heun = make_sampler("heun");
  const StepCostMatrix cost = gits_cost_matrix(model, *euler, *heun, o);
  const auto& s = o.candidates;
  const int64_t M = static_cast<int64_t>(s.size()) - 1;
  // Independently: each sample's teacher trajectory, its Euler steps and the distances, in doubles.
  std::vector<double> want((M + 1) * (M + 1), 0.0);
  Denoiser denoise(model);
  for (uint64_t seed = 0; seed < 6; ++seed) {
    NoiseSource noise({seed});
    std::vector<torch::Tensor> x{(noise.randn(model->metadata().shape) * s[0]).to(torch::kFloat64)};
    for (int64_t i = 0; i < M; ++i) x.push_back(heun->sample(denoise, x[i], {s[i], s[i + 1]}, noise));
    auto point = [](const torch::Tensor& t) {
      auto a = t.contiguous().data_ptr<double>();
      return std::array<double, 2>{a[0], a[1]};
    };
    const auto a = point(x[0]), e = point(x[M]);
    const double len = std::hypot(e[0] - a[0], e[1] - a[1]);
    auto dev = [&](std::array<double, 2> p) {  // |cross product| / chord length: distance from the line
      return std::abs((e[0] - a[0]) * (p[1] - a[1]) - (e[1] - a[1]) * (p[0] - a[0])) / len;
    };
    for (int64_t i = 0; i < M; ++i) {
      const auto xi = point(x[i]), di = point(denoise(x[i], s[i]));
      for (int64_t j = i + 1; j <= M; ++j) {
        const double f = (s[j] - s[i]) / s[i];  // x_i + (σ_j − σ_i)(x_i − D)/σ_i
        const std::array<double, 2> step{xi[0] + f * (xi[0] - di[0]), xi[1] + f * (xi[1] - di[1])};
        want[i * (M + 1) + j] += (dev(step) - (j < M ? dev(point(x[j])) : 0.0)) / 6.0;
      }
    }
  }
  double largest = 0;
  for (double w : want) largest = std::max(largest, std::abs(w));
  ASSERT_GT(largest, 1e-3);  // the trajectories are curved: the costs are not all zero
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = i + 1; j <= M; ++j)
      EXPECT_NEAR(cost(i + 1, j + 1), want[i * (M + 1) + j], 1e-9 * largest) << "step " << i << " -> " << j;

  auto gaussian = open_model("builtin:gaussian:shape=3,mean=0.3,std=0.5");
  o.candidates = make_sigmas("karras", 5, gaussian->metadata().schedule, KeyValueArgs(""));
  const StepCostMatrix straight = gits_cost_matrix(gaussian, *euler, *heun, o);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = i + 1; j <= M; ++j) EXPECT_NEAR(straight(i + 1, j + 1), 0.0, 1e-9) << i << " -> " << j;
}

TEST(Gits, MetricNamesAndBadWeightsAreRefused) {
  EXPECT_EQ(parse_gits_metric("dev"), GitsMetric::Dev);
  EXPECT_EQ(parse_gits_metric("l1"), GitsMetric::L1);
  EXPECT_EQ(gits_metric_name(GitsMetric::L2), "l2");
  try {
    parse_gits_metric("lpips");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lpips"), std::string::npos) << e.what();
  }
  StepCostMatrix cost(4);
  EXPECT_THROW(gits_select(cost, {4, 2, 1, 0}, 2, 0.0), Error);
}
