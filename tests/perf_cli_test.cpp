// `scoreflow bench`, `--cuda-graph` and `--dtype` as they behave on the CPU (the GPU numbers are
// benchmarks: bench/gpu_performance.sh → docs/performance.md).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "models/cuda_graph.h"
#include "tests/support/cli_run.h"

namespace fs = std::filesystem;
using namespace scoreflow::testing_cli;

namespace {
const std::string kFixtures = SCOREFLOW_FIXTURE_DIR;

}  // namespace

TEST(Perf, CudaGraphFallsBackToEagerOnCpuWithIdenticalSamples) {
  const std::string model = kFixtures + "/tiny_eps.pt";
  const std::string a = tmp("graph_off.npz"), b = tmp("graph_on.npz");
  const std::string common =
      "sample --model " + model + " --sampler dpmpp_2m --nfe 6 --seeds 0-4 --batch 3 --json --npz ";
  Result off = run(common + a);
  ASSERT_EQ(off.code, 0) << off.err;
  Result on = run(common + b + " --cuda-graph");
  ASSERT_EQ(on.code, 0) << on.err;
  EXPECT_NE(on.err.find("CUDA graphs need a CUDA device"), std::string::npos) << on.err;
  auto doc = nlohmann::json::parse(on.out);
  EXPECT_EQ(doc["cuda_graph"], false);
  EXPECT_EQ(doc["nfe"], 6);
  EXPECT_EQ(slurp(a), slurp(b)) << "the eager fallback must give the same samples";
}

TEST(Perf, ReducedPrecisionOnCpuIsAClearError) {
  const std::string out = tmp("fp16.npz");
  expect_refused("sample --model " + kFixtures + "/tiny_eps.pt --steps 2 --dtype fp16 --npz " + out,
                 "--dtype fp16 needs --device cuda", out);
  expect_refused("sample --model " + kFixtures + "/tiny_eps.pt --steps 2 --dtype bf16 --npz " + out,
                 "--dtype bf16 needs --device cuda", out);
  expect_refused("sample --model builtin:gmm --steps 2 --dtype fp16 --npz " + out,
                 "is for TorchScript networks on CUDA", out);
  expect_refused("bench --model " + kFixtures + "/tiny_eps.pt --dtype fp16", "--dtype fp16 needs --device cuda");
  expect_refused("bench --model builtin:gmm --dtype half", "--dtype 'half' is unknown; valid: fp32, fp16, bf16");
  expect_refused("bench --model builtin:gmm --sampler euler,heun --nfe 0", "needs at least 1 NFE");
  expect_refused("bench --model builtin:gmm --batch 4,0", "--batch must be a list of integers >= 1");
}

TEST(Perf, BenchReportsNetworkAndSamplerTimesPerCall) {
  Result r = run("bench --model " + kFixtures +
                 "/tiny_eps.pt --sampler heun --nfe 7 --batch 4 --repeat 2 --iterations 3 --cuda-graph --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["sampler"], "heun");
  EXPECT_EQ(doc["nfe"], 7);  // heun: 2 per step, none at σ = 0 → 4 steps = 7 calls
  EXPECT_EQ(doc["steps"], 4);
  EXPECT_GT(doc["network_ms"].get<double>(), 0);
  EXPECT_GT(doc["sampler_ms_per_call"].get<double>(), 0);
  // No CUDA here: the graph rows are absent and the reason is given.
  EXPECT_TRUE(doc["network_graph_ms"].is_null());
  EXPECT_NE(doc["cuda_graph_note"].get<std::string>().find("CUDA graphs need a CUDA device"), std::string::npos);
  EXPECT_NE(r.err.find("network alone"), std::string::npos);
}

TEST(Perf, GraphRunnerIsAStubWithoutCuda) {
  if (scoreflow::GraphRunner::available()) GTEST_SKIP() << "built with CUDA";
  scoreflow::GraphRunner runner;
  try {
    runner.run(
        {torch::zeros({2})}, [](std::vector<torch::Tensor>& in) { in[0].fill_(1); },
        [](const std::vector<torch::Tensor>& in) { return in[0] * 2; });
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA support"), std::string::npos) << e.what();
  }
  EXPECT_EQ(runner.captured(), 0);
}
