// The scoreflow command end to end: outputs, --json, and one `error:` line + non-zero exit + no
// output file for each kind of bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/support/cli_run.h"

namespace fs = std::filesystem;

using namespace scoreflow::testing_cli;

namespace {
const std::string kFixtures = SCOREFLOW_FIXTURE_DIR;
}  // namespace

TEST(Cli, SampleWritesGridPerSeedPngsAndNpz) {
  std::string grid = tmp("grid.png"), dir = tmp("seeds"), npz = tmp("s.npz");
  fs::remove_all(dir);
  Result r = run("sample --model builtin:gmm:shape=3x8x8 --sampler euler --steps 4 --seeds 3-6 --batch 3 --out " +
                 grid + " --out-dir " + dir + " --npz " + npz + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["nfe"], 4);
  EXPECT_EQ(doc["num_samples"], 4);
  EXPECT_EQ(doc["outputs"]["grid"], grid);
  EXPECT_TRUE(fs::exists(grid));
  for (int s = 3; s <= 6; ++s) EXPECT_TRUE(fs::exists(dir + "/seed00000" + std::to_string(s) + ".png"));
  // numpy reads the archive: samples float32 [4,3,8,8], images uint8 NHWC, seeds.
  std::string check = "/usr/bin/python3 -c \"import numpy as n; d=n.load('" + npz +
                      "'); assert d['samples'].shape==(4,3,8,8) and d['samples'].dtype==n.float32; "
                      "assert d['images'].shape==(4,8,8,3) and d['images'].dtype==n.uint8; "
                      "assert list(d['seeds'])==[3,4,5,6]\"";
  EXPECT_EQ(std::system(check.c_str()), 0);
}

TEST(Cli, NfeBudgetIsReportedAndUsed) {
  Result r = run("sample --model builtin:ring8 --sampler heun --nfe 9 --seeds 0-3 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["steps"], 5);
  EXPECT_EQ(doc["nfe"], 9);
  EXPECT_NE(r.err.find("--nfe 9 -> 5 steps"), std::string::npos) << r.err;
}

TEST(Cli, SamplesAreIdenticalWhateverTheBatchSize) {
  std::string a = tmp("a.npz"), b = tmp("b.npz");
  ASSERT_EQ(run("sample --model builtin:ring8 --sampler ddpm --steps 10 --seeds 0-9 --batch 10 --npz " + a).code, 0);
  ASSERT_EQ(run("sample --model builtin:ring8 --sampler ddpm --steps 10 --seeds 0-9 --batch 3 --npz " + b).code, 0);
  std::string check = "/usr/bin/python3 -c \"import numpy as n; assert (n.load('" + a + "')['samples']==n.load('" + b +
                      "')['samples']).all()\"";
  EXPECT_EQ(std::system(check.c_str()), 0);
}

TEST(Cli, ListAndInfo) {
  Result r = run("list samplers");
  ASSERT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("heun"), std::string::npos);
  EXPECT_NE(run("list schedules").out.find("karras"), std::string::npos);
  EXPECT_NE(run("list builtins").out.find("builtin:gmm"), std::string::npos);
  Result info = run("info --model " + kFixtures + "/tiny_eps.pt --json");
  ASSERT_EQ(info.code, 0) << info.err;
  auto doc = nlohmann::json::parse(info.out);
  EXPECT_EQ(doc["prediction"], "eps");
  EXPECT_EQ(doc["dry_forward"]["output_shape"], nlohmann::json({2, 1, 8, 8}));
  expect_refused("list nonsense", "valid: samplers, schedules, builtins");
}

TEST(Cli, BadInputGetsOneErrorLineAndNoOutput) {
  const std::string out = tmp("bad.png");
  const std::string base = " --steps 3 --seeds 0-1 --out " + out;
  const std::string fx = kFixtures + "/";
  expect_refused("sample --model /nonexistent/model.pt" + base, "cannot read model file '/nonexistent/model.pt'", out);
  expect_refused("sample --model " + fx + "random_bytes.pt" + base, "not a TorchScript archive", out);
  expect_refused("sample --model " + fx + "one_input.pt" + base, "forward takes 1 inputs", out);
  expect_refused("sample --model " + fx + "wrong_shape.pt" + base, "forward returned shape", out);
  expect_refused("sample --model " + fx + "throws.pt" + base, "deliberate failure", out);
  expect_refused("sample --model " + fx + "bad_meta_type.pt" + base, "'shape'", out);
  expect_refused("sample --model " + fx + "bad_meta_value.pt" + base, "unknown prediction 'epsilon'", out);
  expect_refused("sample --model " + fx + "no_meta.pt" + base, "lacks: prediction, schedule, time_input, shape", out);
  expect_refused("sample --model " + fx + "nan_below.pt --sampler euler" + base, "NaN or Inf at sigma=", out);
  expect_refused("sample --model builtin:gmm --sampler nope" + base, "unknown sampler 'nope'; valid: euler, heun", out);
  expect_refused("sample --model builtin:gmm --schedule nope" + base, "unknown schedule 'nope'; valid: karras", out);
  expect_refused("sample --model builtin:nope" + base, "unknown builtin model 'nope'; valid: gaussian", out);
  expect_refused("sample --model builtin:gmm --sampler-args eta=1" + base, "unknown sampler arg 'eta' for sampler heun",
                 out);
  expect_refused("sample --model builtin:gmm --steps 0 --out " + out, "steps must be", out);
  expect_refused("sample --model builtin:gmm --steps 100000000 --out " + out, "steps must be", out);
  expect_refused("sample --model builtin:gmm --seeds 0-x --out " + out, "malformed --seeds '0-x'", out);
  expect_refused("sample --model builtin:gmm --sampler heun --nfe 0 --out " + out, "needs at least 1 NFE", out);
  expect_refused("sample --model builtin:gmm --steps 2 --out /nonexistent/dir/grid.png", "/nonexistent/dir");
  expect_refused("sample --model builtin:ring8 --steps 2 --out " + out, "need image-shaped samples", out);
  expect_refused("sample --model builtin:gmm --steps 2 --device cuda --out " + out, "CUDA is not available", out);
  expect_refused("sample --model builtin:gmm --steps 2 --dtype fp64 --out " + out, "--dtype 'fp64' is unknown", out);
  expect_refused("sample --steps 2 --out " + out, "--model is required", out);
}
