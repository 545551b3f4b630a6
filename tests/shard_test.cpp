// The CLI contract of sharded jobs: one smoke test per command that shards (sample, estimate-gamma,
// eval fid) through `--shard`, a launcher's variables, `--devices` and `scoreflow merge`. What the
// job layer guarantees (byte-identical merges, refused shard sets, the device splitter, launcher
// variables) is tested in process in tests/jobs_test.cpp.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "scoreflow/features.h"
#include "scoreflow/npy.h"
#include "tests/support/cli_run.h"

using namespace scoreflow::testing_cli;

namespace {

/// Runs the CLI with launcher variables set in its environment (and only there).
Result run_with_env(const std::vector<std::pair<std::string, std::string>>& env, const std::string& args) {
  for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
  Result r = run(args);
  for (const auto& [k, v] : env) unsetenv(k.c_str());
  return r;
}

// A stochastic sampler, so that every noise draw (not only the initial noise) must follow the seed.
const std::string kSample =
    "sample --model builtin:gmm:shape=1x6x6,k=3 --sampler ddim --sampler-args eta=1 --steps 6 --seeds 0-10 --batch 3";

}  // namespace

TEST(Shard, SampleShardsMergeToTheUnshardedNpzByteForByte) {
  const std::string full = tmp("shard_full.npz"), part = tmp("shard_part.npz"), merged = tmp("shard_merged.npz");
  ASSERT_EQ(run(kSample + " --npz " + full).code, 0);
  // Shard 0 by flag, shard 1 from torchrun's variables; 11 seeds in 4 batches of 3 -> 2 + 2 batches.
  Result s0 = run(kSample + " --npz " + part + " --shard 0/2 --json");
  ASSERT_EQ(s0.code, 0) << s0.err;
  Result s1 = run_with_env({{"RANK", "1"}, {"WORLD_SIZE", "2"}}, kSample + " --npz " + part + " --json");
  ASSERT_EQ(s1.code, 0) << s1.err;
  const auto d0 = nlohmann::json::parse(s0.out), d1 = nlohmann::json::parse(s1.out);
  EXPECT_EQ(d0["shard"]["source"], "--shard");
  EXPECT_EQ(d1["shard"]["source"], "RANK/WORLD_SIZE");
  EXPECT_EQ(d0["seed_range"], nlohmann::json({0, 6}));
  EXPECT_EQ(d1["seed_range"], nlohmann::json({6, 11}));
  const std::string p0 = tmp("shard_part.shard-0-of-2.npz"), p1 = tmp("shard_part.shard-1-of-2.npz");
  ASSERT_TRUE(std::filesystem::exists(p0) && std::filesystem::exists(p1));
  EXPECT_FALSE(std::filesystem::exists(part)) << "a shard wrote the unsharded name";
  Result m = run("merge " + merged + " " + p1 + " " + p0 + " --json");  // any order
  ASSERT_EQ(m.code, 0) << m.err;
  EXPECT_EQ(nlohmann::json::parse(m.out)["num_samples"], 11);
  EXPECT_EQ(slurp(merged), slurp(full)) << "merged shards differ from the unsharded run";

  // Flags and refusals the CLI owns: --shard/--devices spelled as flags, merge's argument order.
  expect_refused(kSample + " --json --shard 2/2", "--shard '2/2': shard index 2 must be < the number of shards 2");
  expect_refused(kSample + " --npz " + part + " --devices cpu,,cpu", "--devices 'cpu,,cpu' has an empty entry");
  expect_refused("merge " + p0 + " " + p1, "named like a shard file");
  const std::string plain = tmp("shard_plain_merged.npz");
  std::filesystem::remove(plain);
  expect_refused("merge " + plain + " " + full, "is not a shard file", plain);
}

TEST(Shard, SampleShardsOnDevicesShareOneOutDir) {
  // A TorchScript model, shard 0 on two CPU "devices"; the per-seed PNGs of both shards share one
  // folder, each shard keeping its chunks in its own DIR.shard-i-of-n.parts until it is done.
  const std::string model = std::string(SCOREFLOW_FIXTURE_DIR) + "/tiny_eps.pt";
  const std::string cmd = "sample --model " + model + " --sampler heun --steps 4 --seeds 3-12 --batch 4";
  const std::string dir = tmp("shard_ts_pngs");
  std::filesystem::remove_all(dir);
  ASSERT_EQ(run(cmd + " --out-dir " + dir + " --shard 0/2 --devices cpu,cpu").code, 0);
  ASSERT_EQ(run(cmd + " --out-dir " + dir + " --shard 1/2").code, 0);
  int pngs = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) pngs += e.path().extension() == ".png";
  EXPECT_EQ(pngs, 10);
  EXPECT_FALSE(std::filesystem::exists(dir + ".shard-0-of-2.parts")) << "chunk folder left behind";
}

TEST(Shard, GammaShardsMergeToTheUnshardedFileByteForByte) {
  const std::string model = "builtin:gaussian:shape=1x4x4,mean=0.2,std=0.3,schedule=vp_discrete";
  const std::string data = tmp("shard_gamma_data.npy");
  torch::manual_seed(5);
  scoreflow::io::write_npy(data, scoreflow::io::from_tensor((0.2 + 0.3 * torch::randn({230, 1, 4, 4})).clamp(-1, 1)));
  const std::string base =
      "estimate-gamma --model " + model + " --data " + data + " --timesteps 12 --num-images 230 --batch 40 --seed 3";
  const std::string full = tmp("shard_gamma_full.json");
  std::filesystem::remove(full);
  ASSERT_EQ(run(base + " --out " + full).code, 0);
  // 230 images in 6 batches of 40: shard 0 on two devices, shard 1 from Slurm's variables.
  const std::string part = tmp("shard_gamma.json");
  ASSERT_EQ(run(base + " --out " + part + " --shard 0/2 --devices cpu,cpu").code, 0);
  Result s1 = run_with_env({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}}, base + " --out " + part + " --json");
  ASSERT_EQ(s1.code, 0) << s1.err;
  EXPECT_EQ(nlohmann::json::parse(s1.out)["shard"]["source"], "SLURM_PROCID/SLURM_NTASKS");
  EXPECT_EQ(nlohmann::json::parse(s1.out)["image_range"], nlohmann::json({120, 230}));
  const std::string merged = tmp("shard_gamma_merged.json");
  Result m =
      run("merge " + merged + " " + tmp("shard_gamma.shard-1-of-2.npz") + " " + tmp("shard_gamma.shard-0-of-2.npz"));
  ASSERT_EQ(m.code, 0) << m.err;
  const std::string expected = slurp(full);
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(slurp(merged), expected) << "merged Gamma differs from the unsharded one";
  // The merged file is a working Gamma file.
  EXPECT_EQ(run("trajectory --model " + model + " --gamma " + merged + " --steps 4").code, 0);
}

TEST(Shard, FeatureStatisticsShardsMergeToTheUnshardedOnes) {
  const std::string data = tmp("shard_fid_ref.npy"), samples = tmp("shard_fid_samples.npy");
  torch::manual_seed(11);
  scoreflow::io::write_npy(data, scoreflow::io::from_tensor(torch::randn({301, 5}) * 0.7 + 0.4));
  scoreflow::io::write_npy(samples, scoreflow::io::from_tensor(torch::randn({150, 5}) * 0.9 - 0.2));
  // Reference statistics: unsharded vs 2 shards merged.
  const std::string ref = tmp("shard_fid_ref_stats.npz"), part = tmp("shard_fid_ref_part.npz");
  ASSERT_EQ(run("eval fid --features none --batch 50 --ref-data " + data + " --save-stats " + ref).code, 0);
  ASSERT_EQ(
      run("eval fid --features none --batch 50 --ref-data " + data + " --save-stats " + part + " --shard 0/2").code, 0);
  Result s1 = run_with_env({{"RANK", "1"}, {"WORLD_SIZE", "2"}},
                           "eval fid --features none --batch 50 --ref-data " + data + " --save-stats " + part);
  ASSERT_EQ(s1.code, 0) << s1.err;
  const std::string merged = tmp("shard_fid_ref_merged.npz");
  Result m = run("merge " + merged + " " + tmp("shard_fid_ref_part.shard-0-of-2.npz") + " " +
                 tmp("shard_fid_ref_part.shard-1-of-2.npz"));
  ASSERT_EQ(m.code, 0) << m.err;
  const auto [mu_a, sigma_a] = scoreflow::eval::load_feature_stats(ref);
  const auto [mu_b, sigma_b] = scoreflow::eval::load_feature_stats(merged);
  // Shards use their own shift, re-centred exactly on merge: equal up to float64 rounding.
  EXPECT_TRUE(torch::allclose(mu_b, mu_a, 1e-14, 1e-15)) << mu_a << mu_b;
  EXPECT_TRUE(torch::allclose(sigma_b, sigma_a, 1e-13, 1e-15)) << sigma_a - sigma_b;
  // And not trivially: the merged statistics match an independent float64 mean/covariance.
  const auto x = scoreflow::io::to_tensor(scoreflow::io::read_npy(data)).to(torch::kFloat64);
  const auto xc = x - x.mean(0);
  EXPECT_TRUE(torch::allclose(sigma_b, xc.t().matmul(xc) / 300.0, 1e-12, 1e-14));

  // The sample side against those statistics: FD of merged shards = FD of one run.
  Result one = run("eval fid --features none --batch 40 --ref " + ref + " --samples " + samples + " --json");
  ASSERT_EQ(one.code, 0) << one.err;
  const std::string sp = tmp("shard_fid_samples_part.npz");
  for (int i = 0; i < 3; ++i)  // shard 1 on two devices in its process: its partial sums are merged there
    ASSERT_EQ(run("eval fid --features none --batch 40 --ref " + ref + " --samples " + samples + " --save-stats " + sp +
                  " --shard " + std::to_string(i) + "/3" + (i == 1 ? " --devices cpu,cpu" : ""))
                  .code,
              0);
  Result fd = run("merge " + tmp("shard_fid_samples_stats.npz") + " " + tmp("shard_fid_samples_part.shard-0-of-3.npz") +
                  " " + tmp("shard_fid_samples_part.shard-1-of-3.npz") + " " +
                  tmp("shard_fid_samples_part.shard-2-of-3.npz") + " --json");
  ASSERT_EQ(fd.code, 0) << fd.err;
  const double fd_one = nlohmann::json::parse(one.out)["fd"], fd_merged = nlohmann::json::parse(fd.out)["fd"];
  EXPECT_GT(fd_one, 0.1);
  EXPECT_NEAR(fd_merged, fd_one, 1e-12 * fd_one);

  expect_refused("eval fid --features none --ref " + ref + " --samples " + samples + " --shard 0/2",
                 "give --save-stats FILE.npz");
  expect_refused(
      "eval fid --features none --ref-data " + data + " --samples " + samples + " --save-stats " + sp + " --shard 0/2",
      "give the reference as --ref STATS.npz");
  expect_refused("merge " + tmp("x.npz") + " " + tmp("shard_fid_ref_part.shard-0-of-2.npz") + " " +
                     tmp("shard_fid_samples_part.shard-1-of-3.npz"),
                 "is shard 1 of 3");
}
