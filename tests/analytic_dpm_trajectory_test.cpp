/// Analytic-DPM: the optimal-trajectory DP and the Γ table (file format, refusal, clipping).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "scoreflow/analytic_dpm.h"
#include "scoreflow/error.h"
#include "tests/support/error_text.h"
#include "tests/support/gaussian_oracle.h"

namespace sa = scoreflow;

namespace {

sa::DiscreteChain linear_chain(int64_t N) {
  std::vector<double> betas(N);
  for (int64_t n = 0; n < N; ++n) betas[n] = 1e-4 + (0.02 - 1e-4) * static_cast<double>(n) / static_cast<double>(N - 1);
  return sa::DiscreteChain::from_betas(betas);
}

using scoreflow::testing_support::error_of;

/// Every K-point path 1 = τ_1 < … < τ_K = N, by recursion.
void all_paths(int64_t N, int64_t K, std::vector<int64_t>& prefix, std::vector<std::vector<int64_t>>& out) {
  if (static_cast<int64_t>(prefix.size()) == K - 1) {
    prefix.push_back(N);
    out.push_back(prefix);
    prefix.pop_back();
    return;
  }
  const int64_t remaining = K - 1 - static_cast<int64_t>(prefix.size());  // interior + N left
  for (int64_t n = prefix.back() + 1; n <= N - remaining; ++n) {
    prefix.push_back(n);
    all_paths(N, K, prefix, out);
    prefix.pop_back();
  }
}

}  // namespace

TEST(AnalyticTrajectory, DpFindsTheBruteForceOptimum) {
  const int64_t N = 12;
  std::mt19937 rng(17);
  std::uniform_real_distribution<double> uniform(0.05, 0.98);
  const sa::DiscreteChain chain = linear_chain(N);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> gamma(N + 1, 0.0);
    for (int64_t t = 1; t <= N; ++t) gamma[t] = uniform(rng);
    const sa::StepCostMatrix cost = sa::trajectory_cost(chain, gamma);
    for (int64_t K : {2, 3, 4, 5, 12}) {
      std::vector<std::vector<int64_t>> paths;
      std::vector<int64_t> prefix{1};
      all_paths(N, K, prefix, paths);
      double best = std::numeric_limits<double>::infinity();
      for (const auto& p : paths) best = std::min(best, sa::path_cost(cost, p));
      const auto dp = sa::least_cost_path(cost, K);
      ASSERT_EQ(static_cast<int64_t>(dp.size()), K);
      EXPECT_EQ(dp.front(), 1);
      EXPECT_EQ(dp.back(), N);
      EXPECT_NEAR(sa::path_cost(cost, dp), best, 1e-14) << "trial " << trial << " K=" << K;
    }
  }
}

TEST(AnalyticTrajectory, DpAvoidsForbiddenStepsAndRefusesWhenNoPathIsLeft) {
  // A general cost with +inf holes: the brute force and the DP must agree.
  const int64_t N = 10;
  std::mt19937 rng(23);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  sa::StepCostMatrix cost(N);
  for (int64_t t = 2; t <= N; ++t)
    for (int64_t s = 1; s < t; ++s)
      cost.set(s, t, (s + t) % 3 == 0 ? std::numeric_limits<double>::infinity() : uniform(rng));
  std::vector<std::vector<int64_t>> paths;
  std::vector<int64_t> prefix{1};
  all_paths(N, 4, prefix, paths);
  double best = std::numeric_limits<double>::infinity();
  for (const auto& p : paths) best = std::min(best, sa::path_cost(cost, p));
  EXPECT_DOUBLE_EQ(sa::path_cost(cost, sa::least_cost_path(cost, 4)), best);
  // Γ_N > 1 (unclipped) forbids s → N for every s with β_{N|s} > β̄_N/Γ_N; here all of them.
  const sa::DiscreteChain chain = linear_chain(N);
  std::vector<double> gamma(N + 1, 0.5);
  gamma[N] = 1e6;
  EXPECT_NE(error_of([&] { sa::least_cost_path(sa::trajectory_cost(chain, gamma), 4); }).find("forbidden"),
            std::string::npos);
  // Γ slightly above 1 only forbids long jumps into t; the DP routes around them.
  gamma[N] = 1.02;
  const sa::StepCostMatrix guarded = sa::trajectory_cost(chain, gamma);
  EXPECT_TRUE(std::isinf(guarded(1, N)));
  const auto path = sa::least_cost_path(guarded, 3);
  EXPECT_TRUE(std::isfinite(sa::path_cost(guarded, path)));
}

TEST(AnalyticTrajectory, EvenIsOptimalWhenCostIsConvexInTheGap) {
  // Constant β (ᾱ_t = e^{−ct}) makes β_{t|s} = 1 − e^{−c(t−s)}; with Γ_t = κ·β̄_t (constant score
  // norm κ < 1) J(s, t) = log(1 − κ + κe^{−c(t−s)}), strictly convex in t − s. A path's cost is
  // Σ f(gap) with Σ gap = N − 1 fixed, so (Jensen) equal gaps are optimal, uniquely when
  // K − 1 divides N − 1.
  const int64_t N = 1000;
  const sa::DiscreteChain chain = sa::DiscreteChain::from_betas(std::vector<double>(N, 0.004));
  std::vector<double> gamma(N + 1, 0.0);
  for (int64_t t = 1; t <= N; ++t) gamma[t] = 0.6 * chain.beta_bar(t);
  const sa::StepCostMatrix cost = sa::trajectory_cost(chain, gamma);
  EXPECT_NEAR(cost(3, 50), cost(503, 550), 1e-12);  // depends on t − s only
  for (int64_t K : {4, 10, 28, 112}) {              // 999 = 3³·37: K − 1 ∈ {3, 9, 27, 111}
    EXPECT_EQ(sa::least_cost_path(cost, K), sa::even_timesteps(N, K)) << "K=" << K;
  }
  // K − 1 not dividing N − 1: the optimum is any arrangement of the same ⌊⌋/⌈⌉ gaps.
  for (int64_t K : {7, 50, 300})
    EXPECT_NEAR(sa::path_cost(cost, sa::least_cost_path(cost, K)), sa::path_cost(cost, sa::even_timesteps(N, K)), 1e-9);
}

TEST(AnalyticTrajectory, DpOnAThousandStepsIsFast) {
  const int64_t N = 1000;
  const sa::DiscreteChain chain = linear_chain(N);
  const scoreflow::testing::DiagonalGaussian data{{0.0, 0.2}, {0.05, 0.3}};
  sa::GammaTable table({"builtin:gaussian", "linear(1e-4,0.02,1000)", "", {}}, N);
  for (int64_t t = 1; t <= N; ++t)
    table.set(t, data.gamma_star(std::sqrt(chain.alpha_bar(t)), std::sqrt(chain.beta_bar(t))), 0.0, 1);
  const auto start = std::chrono::steady_clock::now();
  const auto k10 = sa::optimal_trajectory(chain, table, 10);
  const auto k333 = sa::optimal_trajectory(chain, table, 333);
  const auto k1000 = sa::optimal_trajectory(chain, table, 1000);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(k10.size(), 10u);
  EXPECT_EQ(k1000, sa::even_timesteps(N, N));
  const sa::StepCostMatrix cost = sa::trajectory_cost(chain, table.dense());
  EXPECT_LE(sa::path_cost(cost, k10), sa::path_cost(cost, sa::even_timesteps(N, 10)));
  EXPECT_LE(sa::path_cost(cost, k333), sa::path_cost(cost, sa::quadratic_timesteps(N, 333)));
  EXPECT_LT(seconds, 3.0) << "three DPs with N = 1000 took " << seconds << " s";
}

// ---- Γ table ----

TEST(AnalyticGamma, AccumulatorMatchesDirectMoments) {
  std::mt19937 rng(29);
  std::normal_distribution<double> n01;
  std::vector<double> values;
  sa::GammaAccumulator one_by_one, batched;
  for (int i = 0; i < 37; ++i) values.push_back(1.0 + 0.1 * n01(rng));
  for (double v : values) one_by_one.add(v);
  const auto f64 = torch::dtype(torch::kFloat64);
  batched.add(torch::tensor(std::vector<double>(values.begin(), values.begin() + 10), f64));
  batched.add(torch::tensor(std::vector<double>(values.begin() + 10, values.end()), f64));
  double mean = 0.0, ss = 0.0;
  for (double v : values) mean += v / values.size();
  for (double v : values) ss += (v - mean) * (v - mean);
  const double se = std::sqrt(ss / (values.size() - 1) / values.size());
  EXPECT_NEAR(one_by_one.mean(), mean, 1e-14);
  EXPECT_NEAR(one_by_one.std_err(), se, 1e-14);
  EXPECT_NEAR(batched.mean(), mean, 1e-14);
  EXPECT_NEAR(batched.std_err(), se, 1e-14);
  EXPECT_EQ(batched.count(), 37);
  const torch::Tensor eps = torch::ones({3, 2, 2}) * torch::tensor({1.0, 2.0, 3.0}).view({3, 1, 1});
  EXPECT_TRUE(torch::allclose(sa::per_sample_sq_norm(eps), torch::tensor({1.0, 4.0, 9.0}, torch::kFloat64)));
}

TEST(AnalyticGamma, JsonRoundTripAndClipping) {
  const int64_t N = 50;
  const sa::DiscreteChain chain = linear_chain(N);
  sa::GammaMeta meta{
      "demo.pt sha256:abc", "linear(1e-4,0.02,50)", "fashion-mnist:train", {{"num_images", "100"}, {"seed", "7"}}};
  sa::GammaTable table(meta, N);
  table.set(1, 1.0 + 1e-3, 2e-3, 100);  // noisy estimate above 1
  table.set(10, 0.75, 1e-3, 100);
  table.set(20, -0.01, 1e-3, 100);  // below 0
  table.set(50, 0.2, 1e-3, 100);
  EXPECT_EQ(table.num_clipped(), 2);
  EXPECT_EQ(table.clipped_timesteps(), (std::vector<int64_t>{1, 20}));
  EXPECT_EQ(table.eps(1), 1.0);
  EXPECT_EQ(table.entry(1).gamma_raw, 1.0 + 1e-3);
  EXPECT_EQ(table.eps(20), 0.0);
  EXPECT_NEAR(table.eps(15), 0.375, 1e-15);  // linear between t = 10 and t = 20
  EXPECT_EQ(table.eps(5), table.eps(1) + (table.eps(10) - table.eps(1)) * 4.0 / 9.0);
  EXPECT_NEAR(table.score_norm(10, chain), 0.75 / chain.beta_bar(10), 1e-15);

  const sa::GammaTable back = sa::GammaTable::from_json(table.to_json(), chain, meta);
  ASSERT_EQ(back.entries().size(), 4u);
  for (int64_t t : {1, 10, 20, 50}) {
    EXPECT_EQ(back.entry(t).gamma, table.entry(t).gamma);
    EXPECT_EQ(back.entry(t).gamma_raw, table.entry(t).gamma_raw);
    EXPECT_EQ(back.entry(t).std_err, table.entry(t).std_err);
    EXPECT_EQ(back.entry(t).count, 100);
  }
  EXPECT_EQ(back.num_clipped(), 2);
  EXPECT_EQ(back.meta().settings.at("seed"), "7");
  EXPECT_EQ(back.meta().dataset, "fashion-mnist:train");
  EXPECT_EQ(nlohmann::json::parse(table.to_json()).at("convention"), "eps");

  // Through a file.
  const std::string path = ::testing::TempDir() + "analytic_gamma_roundtrip.json";
  table.save(path);
  EXPECT_EQ(sa::GammaTable::load(path, chain, {}).dense(), table.dense());
  std::remove(path.c_str());
}

TEST(AnalyticGamma, RefusesAnotherModelOrSchedule) {
  const int64_t N = 20;
  const sa::DiscreteChain chain = linear_chain(N);
  sa::GammaTable table({"model-A", "linear(1e-4,0.02,20)", "d", {}}, N);
  table.set(5, 0.5, 0.01, 10);
  const std::string text = table.to_json();
  const std::string schedule_error = error_of([&] {
    sa::GammaTable::from_json(text, chain, {"model-A", "cosine(20)", "", {}}, "g.json");
  });
  EXPECT_NE(schedule_error.find("field 'schedule'"), std::string::npos) << schedule_error;
  EXPECT_NE(schedule_error.find("cosine(20)"), std::string::npos);
  EXPECT_NE(schedule_error.find("g.json"), std::string::npos);
  const std::string model_error = error_of([&] { sa::GammaTable::from_json(text, chain, {"model-B", "", "", {}}); });
  EXPECT_NE(model_error.find("field 'model'"), std::string::npos) << model_error;
  const std::string steps_error = error_of([&] { sa::GammaTable::from_json(text, linear_chain(30), {}); });
  EXPECT_NE(steps_error.find("field 'num_steps'"), std::string::npos) << steps_error;
  // The dataset is recorded, not checked; empty expectations are not checked.
  EXPECT_NO_THROW(sa::GammaTable::from_json(text, chain, {"model-A", "", "other-data", {}}));
  EXPECT_NE(error_of([&] { sa::GammaTable::from_json("{nope", chain, {}); }).find("not valid JSON"), std::string::npos);
}

TEST(AnalyticGamma, ReadsScoreConvention) {
  const int64_t N = 20;
  const sa::DiscreteChain chain = linear_chain(N);
  nlohmann::json j = nlohmann::json::parse(sa::GammaTable({"m", "s", "", {}}, N).to_json());
  j["convention"] = "score";
  j["timesteps"] = {{{"t", 7}, {"gamma", 0.4 / chain.beta_bar(7)}, {"count", 3}}};
  const sa::GammaTable table = sa::GammaTable::from_json(j.dump(), chain, {"m", "s", "", {}});
  EXPECT_NEAR(table.eps(7), 0.4, 1e-15);
  j["convention"] = "norm";
  EXPECT_NE(error_of([&] { sa::GammaTable::from_json(j.dump(), chain, {}); }).find("eps, score"), std::string::npos);
}
