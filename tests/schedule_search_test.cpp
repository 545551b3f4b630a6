// GITS: the dynamic programme against brute force over every coarse grid, and the whole search on the
// exact Gaussian ODE, where each step's cost is known in closed form.
#include "scoreflow/schedule_search.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "scoreflow/error.h"
#include "scoreflow/registry.h"
#include "scoreflow/sigmas.h"

using namespace scoreflow;

namespace {

/// The path 0 = i_0 < … < i_K = M minimising Σ cost(i_k, i_{k+1}), by enumerating every subset of
/// K − 1 interior candidates.
std::vector<int64_t> brute_force(const std::function<double(int64_t, int64_t)>& cost, int64_t M, int K) {
  std::vector<int64_t> best, cur{0};
  double best_cost = std::numeric_limits<double>::infinity();
  std::function<void(int64_t, double)> walk = [&](int64_t from, double acc) {
    if (static_cast<int>(cur.size()) == K) {
      const double total = acc + cost(from, M);
      if (total < best_cost) best_cost = total, best = cur, best.push_back(M);
      return;
    }
    for (int64_t j = from + 1; j < M; ++j) {
      cur.push_back(j);
      walk(j, acc + cost(from, j));
      cur.pop_back();
    }
  };
  walk(0, 0.0);
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
    analytic::StepCostMatrix cost(M + 1);
    std::vector<double> c((M + 1) * (M + 1));
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = i + 1; j <= M; ++j) cost.set(i + 1, j + 1, c[i * (M + 1) + j] = u(rng) * (j - i));
    for (int steps = 1; steps <= 5; ++steps) {
      const GitsResult r = gits_select(cost, candidates, steps);
      const auto want = brute_force([&](int64_t i, int64_t j) { return c[i * (M + 1) + j]; }, M, steps);
      EXPECT_EQ(r.indices, want) << "trial " << trial << " steps " << steps;
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
  const auto& s = o.candidates;
  const int64_t M = static_cast<int64_t>(s.size()) - 1;
  auto r = [&](int64_t i) { return std::sqrt(v + s[i] * s[i]); };
  auto exact = [&](int64_t i, int64_t j) {
    if (j < M) return r(i) * std::abs(1 + (s[j] - s[i]) * s[i] / (r(i) * r(i)) - r(j) / r(i));
    return r(i) * std::abs(v / (r(i) * r(i)) - v / (r(i) * r(M - 1)));
  };
  auto student = make_sampler("euler"), teacher = make_sampler("heun");
  const analytic::StepCostMatrix cost = gits_cost_matrix(model, *student, *teacher, o);
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
