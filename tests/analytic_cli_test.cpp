// estimate-gamma (resume from a finished file and from the chunks of a killed run, refusal of mixed
// settings), trajectory, nll, and sample with --trajectory/--gamma, through the scoreflow command.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "scoreflow/npy.h"
#include "tests/support/cli_run.h"

using namespace scoreflow::testing_cli;

namespace {

const std::string kModel = "builtin:gaussian:shape=1x4x4,mean=0.2,std=0.3,schedule=vp_discrete";

/// Per process: ctest runs these tests in parallel processes, and one must not read the file while
/// another rewrites it.
std::string dataset() {
  std::string path = tmp("analytic_cli_data_" + std::to_string(::getpid()) + ".npy");
  torch::manual_seed(3);
  torch::Tensor x = (0.2 + 0.3 * torch::randn({300, 1, 4, 4})).clamp(-1, 1);
  scoreflow::io::write_npy(path, scoreflow::io::from_tensor(torch::round((x + 1) * 127.5) / 127.5 - 1));
  return path;
}

}  // namespace

TEST(AnalyticCli, EstimateGammaResumesAndRefusesMixedSettings) {
  const std::string data = dataset(), out = tmp("cli_gamma.json");
  std::filesystem::remove(out);
  const std::string base =
      "estimate-gamma --model " + kModel + " --data " + data + " --timesteps 20 --batch 100 --out " + out;
  Result first = run(base + " --num-images 300 --json");
  ASSERT_EQ(first.code, 0) << first.err;
  auto doc = nlohmann::json::parse(first.out);
  EXPECT_EQ(doc["timesteps"], 20);
  // The same command again finds every timestep done and redoes none.
  Result again = run(base + " --num-images 300");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.err.find("resuming"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("20 of 20 timesteps done"), std::string::npos) << again.err;
  expect_refused(base + " --num-images 200", "num_images=300, this run has num_images=200");
  EXPECT_EQ(run(base + " --num-images 200 --overwrite").code, 0);

  Result traj = run("trajectory --model " + kModel + " --gamma " + out + " --steps 5 --json");
  ASSERT_EQ(traj.code, 0) << traj.err;
  auto t = nlohmann::json::parse(traj.out);
  EXPECT_EQ(t["timesteps"].size(), 5u);
  EXPECT_EQ(t["timesteps"][0], 1);
  EXPECT_EQ(t["timesteps"][4], 1000);
  EXPECT_LE(t["cost"].get<double>(), t["even_cost"].get<double>() + 1e-12);

  Result nll =
      run("nll --model " + kModel + " --data " + data + " --gamma " + out + " --steps 10 --num-images 100 --json");
  ASSERT_EQ(nll.code, 0) << nll.err;
  auto n = nlohmann::json::parse(nll.out);
  EXPECT_GT(n["bits_per_dim"].get<double>(), 0.0);
  EXPECT_EQ(n["per_step"].size(), 9u);

  Result s = run("sample --model " + kModel + " --sampler analytic_ddim --gamma " + out +
                 " --trajectory optimal --steps 6 --seeds 0-7 --json");
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_EQ(nlohmann::json::parse(s.out)["nfe"], 6);
}

TEST(AnalyticCli, EstimateGammaKilledAfterThreeTimestepsResumesFromItsChunks) {
  const std::string data = dataset(), dir = fresh_dir("analytic_cli_kill");
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{
        "estimate-gamma", "--model", kModel,  "--data", data, "--timesteps", "8", "--batch", "100",
        "--num-images",   "300",     "--out", out};
  };
  ASSERT_EQ(run_cli(args(dir + "/whole.json"), dir + "/whole").code, 0);
  const std::string out = dir + "/gamma.json", parts = out + ".parts";
  const Outcome killed = run_cli(args(out), dir + "/killed", {"SCOREFLOW_TEST_KILL_AFTER_CHUNKS=3"});
  ASSERT_EQ(killed.signal, SIGKILL) << "exit " << killed.code << ": " << killed.err;
  EXPECT_FALSE(std::filesystem::exists(out));
  ASSERT_TRUE(std::filesystem::exists(parts));
  const Outcome resumed = run_cli(args(out), dir + "/resumed");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("3 finished timesteps reused"), std::string::npos) << resumed.err;
  EXPECT_EQ(slurp(out), slurp(dir + "/whole.json")) << "the resumed Gamma file differs from an uninterrupted run";
  EXPECT_FALSE(std::filesystem::exists(parts));
}

TEST(AnalyticCli, BadInputGetsOneErrorLine) {
  const std::string data = dataset(), gamma = tmp("cli_gamma_other.json");
  ASSERT_EQ(run("estimate-gamma --model builtin:gaussian:shape=1x4x4,schedule=vp_discrete --data " + data +
                " --timesteps 5 --num-images 50 --out " + gamma)
                .code,
            0);
  expect_refused("nll --model " + kModel + " --data " + data + " --gamma " + gamma + " --steps 5", "model");
  expect_refused("nll --model " + kModel + " --data " + data + " --steps 5000 --variance ddpm-beta",
                 "larger than the model's 1000");
  expect_refused("nll --model " + kModel + " --data " + data + " --steps 5 --variance analytic", "needs --gamma");
  expect_refused("nll --model " + kModel + " --data " + data + " --steps 5 --variance bogus", "bogus");
  expect_refused("estimate-gamma --model builtin:gaussian:shape=1x4x4 --data " + data + " --out " + tmp("g.json"),
                 "needs a discrete VP model", tmp("g.json"));
  expect_refused("estimate-gamma --model " + kModel + " --data /nonexistent.npy --out " + tmp("g.json"),
                 "/nonexistent.npy", tmp("g.json"));
  expect_refused("sample --model " + kModel + " --sampler analytic_ddpm --steps 5 --seeds 0-1 --json",
                 "needs gamma=FILE");
  expect_refused("sample --model " + kModel + " --sampler analytic_ddpm --gamma " + gamma +
                     " --trajectory even --steps 5 --seeds 0-1 --json",
                 "model");
}

TEST(AnalyticCli, ForwardOnlyTimesTheSameCallsAndWritesNothing) {
  const std::string data = dataset(), out = tmp("cli_gamma_fwd.json");
  std::filesystem::remove(out);
  const std::string base =
      "estimate-gamma --model " + kModel + " --data " + data + " --timesteps 5 --num-images 250 --batch 100";
  Result fwd = run(base + " --forward-only --json");
  ASSERT_EQ(fwd.code, 0) << fwd.err;
  auto f = nlohmann::json::parse(fwd.out);
  EXPECT_EQ(f["mode"], "forward-only");
  EXPECT_GT(f["images_per_second"].get<double>(), 0.0);
  EXPECT_FALSE(std::filesystem::exists(out));
  // The estimation itself reports its steady-state rate (first timestep left out) the same way.
  Result est = run(base + " --out " + out + " --json");
  ASSERT_EQ(est.code, 0) << est.err;
  EXPECT_GT(nlohmann::json::parse(est.out)["images_per_second"].get<double>(), 0.0);
  expect_refused(base, "--out is required");
  expect_refused(
      "estimate-gamma --model " + kModel + " --data " + data + " --timesteps 2 --num-images 999 --forward-only",
      "--num-images must be in [1, 300]");
}
