// `scoreflow bench` as a library call (scoreflow/bench.h), in process: the calls it times, the
// NFE and steps it reports, and its report lines. The timings themselves are benchmarks
// (bench/gpu_performance.sh → docs/performance.md), never asserted here.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "scoreflow/bench.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"

using namespace scoreflow;

namespace {

/// Samples 0 .. n - 1.
SampleJob seeds(int n) {
  SampleJob job;
  for (int i = 0; i < n; ++i) job.seeds.push_back(i);
  return job;
}

/// One timed run of `iterations` network calls at an NFE budget of `nfe`.
jobs::BenchOptions one_run(int nfe, int iterations) {
  jobs::BenchOptions o;
  o.repeat = 1;
  o.iterations = iterations;
  o.nfe = nfe;
  return o;
}

TEST(BenchJob, MedianSecondsWarmsUpOnceThenTimesRepeatRuns) {
  int calls = 0;
  const double s = jobs::median_seconds(torch::kCPU, 3, [&] { ++calls; });
  EXPECT_EQ(calls, 4);
  EXPECT_GE(s, 0);
}

TEST(BenchJob, ReportsTheSamplersNfeAndStepsAndLeavesGraphFieldsUnmeasured) {
  auto model = open_model("builtin:gmm:shape=1x2x2,k=2");
  // Heun on a grid ending in 0 makes 2N − 1 calls in N steps: a budget of 4 gives 2 steps, 3 calls.
  jobs::BenchOptions o = one_run(4, 2);
  auto heun = make_sampler("heun");
  const jobs::BenchResult r = jobs::bench_sampler(model, *heun, "", FinalStep::Zero, seeds(2), o);
  EXPECT_EQ(r.steps, 2);
  EXPECT_EQ(r.nfe, 3);
  EXPECT_EQ(r.batch, 2);
  EXPECT_GT(r.network, 0);
  EXPECT_GT(r.sampler_per_call, 0);
  EXPECT_TRUE(std::isnan(r.network_graph) && std::isnan(r.rms_vs_fp32));
  EXPECT_EQ(r.text().rfind("heun on cpu, batch 2, builtin:gmm:shape=1x2x2,k=2, 3 NFE (2 steps), dtype fp32\n", 0), 0u)
      << r.text();
  const nlohmann::json j = r.to_json();
  EXPECT_EQ(j["command"], "bench");
  EXPECT_EQ(j["nfe"], 3);
  EXPECT_EQ(j["final"], "zero");
  EXPECT_TRUE(j["network_graph_ms"].is_null());
  EXPECT_TRUE(j["rms_vs_fp32"].is_null());
  EXPECT_DOUBLE_EQ(j["network_ms"].get<double>(), r.network * 1e3);
  // A budget below the method's minimum is refused naming it.
  o.nfe = 0;
  EXPECT_THROW(jobs::bench_sampler(model, *heun, "", FinalStep::Zero, seeds(2), o), Error);
}

// One step ([sigma_max, 0]) on a discrete-time network, which refuses sigma = 0: the network alone is
// timed at a level the sampler evaluates, not at the grid's final 0.
TEST(BenchJob, OneStepTimesTheNetworkAtANoiseLevelTheSamplerUses) {
  auto model = open_model(std::string(SCOREFLOW_FIXTURE_DIR) + "/tiny_eps.pt");
  auto euler = make_sampler("euler");
  const jobs::BenchResult r = jobs::bench_sampler(model, *euler, "", FinalStep::Zero, seeds(1), one_run(1, 1));
  EXPECT_EQ(r.steps, 1);
  EXPECT_EQ(r.nfe, 1);
  EXPECT_GT(r.network, 0);
}

}  // namespace
