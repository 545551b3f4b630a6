// Sharded jobs (--shard i/n, launcher variables, --devices) merged with `scoreflow merge` equal one
// unsharded run: sample .npz byte for byte, Γ files byte for byte, feature statistics to rounding.
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

  // An explicit --shard wins over the launcher's variables (0/1: no sharding at all).
  const std::string single = tmp("shard_single.npz");
  Result w = run_with_env({{"RANK", "1"}, {"WORLD_SIZE", "2"}}, kSample + " --npz " + single + " --shard 0/1");
  ASSERT_EQ(w.code, 0) << w.err;
  EXPECT_EQ(slurp(single), slurp(full));

  // More shards than batches: the empty shards still write (empty) files and the set merges.
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(run(kSample + " --npz " + tmp("shard_five.npz") + " --shard " + std::to_string(i) + "/5").code, 0);
  std::string five = "merge --out " + tmp("shard_five_merged.npz");
  for (int i = 0; i < 5; ++i) five += " " + tmp("shard_five.shard-" + std::to_string(i) + "-of-5.npz");
  ASSERT_EQ(run(five).code, 0);
  EXPECT_EQ(slurp(tmp("shard_five_merged.npz")), slurp(full));
}

TEST(Shard, SlurmAndMpiVariablesAreReadAndBadValuesRefused) {
  const std::string part = tmp("shard_env.npz");
  Result slurm = run_with_env({{"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "3"}}, kSample + " --npz " + part + " --json");
  ASSERT_EQ(slurm.code, 0) << slurm.err;
  EXPECT_EQ(nlohmann::json::parse(slurm.out)["shard"]["source"], "SLURM_PROCID/SLURM_NTASKS");
  EXPECT_TRUE(std::filesystem::exists(tmp("shard_env.shard-2-of-3.npz")));
  Result mpi = run_with_env({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "4"}}, kSample + " --json");
  ASSERT_EQ(mpi.code, 0) << mpi.err;
  EXPECT_EQ(nlohmann::json::parse(mpi.out)["shard"]["index"], 0);
  EXPECT_EQ(nlohmann::json::parse(mpi.out)["shard"]["count"], 4);
  Result array =
      run_with_env({{"SLURM_ARRAY_TASK_ID", "7"}, {"SLURM_ARRAY_TASK_MIN", "5"}, {"SLURM_ARRAY_TASK_COUNT", "3"}},
                   kSample + " --json");
  ASSERT_EQ(array.code, 0) << array.err;
  EXPECT_EQ(nlohmann::json::parse(array.out)["shard"]["index"], 2);

  expect_refused(kSample + " --json --shard 2/2", "--shard '2/2': shard index 2 must be < the number of shards 2");
  expect_refused(kSample + " --json --shard 0/0", "the number of shards must be >= 1");
  expect_refused(kSample + " --json --shard 1of2", "--shard '1of2' is malformed");
  expect_refused(kSample + " --json --shard -1/2", "is malformed");
  for (const auto& [rank, size] : {std::pair<std::string, std::string>{"x", "2"}, {"3", "2"}}) {
    setenv("RANK", rank.c_str(), 1);
    setenv("WORLD_SIZE", size.c_str(), 1);
    expect_refused(kSample + " --json", "RANK/WORLD_SIZE '" + rank + "/" + size + "'");
    unsetenv("RANK");
    unsetenv("WORLD_SIZE");
  }
}

TEST(Shard, MergeRefusesIncompleteRepeatedAndMismatchedShards) {
  const std::string part = tmp("shard_bad.npz"), out = tmp("shard_bad_merged.npz");
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(run(kSample + " --npz " + part + " --shard " + std::to_string(i) + "/3").code, 0);
  const std::string p0 = tmp("shard_bad.shard-0-of-3.npz"), p1 = tmp("shard_bad.shard-1-of-3.npz"),
                    p2 = tmp("shard_bad.shard-2-of-3.npz");
  expect_refused("merge " + out + " " + p0 + " " + p2, "shard 1 of 3 missing", out);
  expect_refused("merge " + out + " " + p0 + " " + p1 + " " + p1 + " " + p2, "shard 1 of 3 is given twice", out);
  // Shard 1 of another run (another step count): same names, other settings.
  const std::string other = tmp("shard_other.npz");
  std::string five_steps = kSample;
  five_steps.replace(five_steps.find("--steps 6"), 9, "--steps 5");
  ASSERT_EQ(run(five_steps + " --npz " + other + " --shard 1/3").code, 0);
  expect_refused("merge " + out + " " + p0 + " " + tmp("shard_other.shard-1-of-3.npz") + " " + p2,
                 "comes from another run", out);
  ASSERT_EQ(run(kSample + " --npz " + other + " --shard 1/2").code, 0);
  expect_refused("merge " + out + " " + p0 + " " + tmp("shard_other.shard-1-of-2.npz") + " " + p2, "is shard 1 of 2",
                 out);
  const std::string plain = tmp("shard_plain.npz");
  ASSERT_EQ(run(kSample + " --npz " + plain).code, 0);
  expect_refused("merge " + out + " " + plain, "is not a shard file", out);
  expect_refused("merge " + p0 + " " + p1 + " " + p2, "named like a shard file");
}

TEST(Shard, DevicesCpuCpuEqualsOneRun) {
  const std::string one = tmp("shard_dev_one.npz"), two = tmp("shard_dev_two.npz");
  ASSERT_EQ(run(kSample + " --npz " + one).code, 0);
  Result r = run(kSample + " --npz " + two + " --devices cpu,cpu");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(slurp(two), slurp(one));
  EXPECT_FALSE(std::filesystem::exists(two + ".parts")) << "chunk folder left behind";
  // Devices inside a shard: the shard's batches are split again.
  const std::string part = tmp("shard_dev_part.npz"), merged = tmp("shard_dev_merged.npz");
  ASSERT_EQ(run(kSample + " --npz " + part + " --shard 0/2 --devices cpu,cpu").code, 0);
  ASSERT_EQ(run(kSample + " --npz " + part + " --shard 1/2").code, 0);
  ASSERT_EQ(run("merge " + merged + " " + tmp("shard_dev_part.shard-0-of-2.npz") + " " +
                tmp("shard_dev_part.shard-1-of-2.npz"))
                .code,
            0);
  EXPECT_EQ(slurp(merged), slurp(one));
  expect_refused(kSample + " --npz " + two + " --devices cpu,,cpu", "--devices 'cpu,,cpu' has an empty entry");
  expect_refused(kSample + " --npz " + two + " --devices cpu,tpu", "--device 'tpu' is unknown");
}

TEST(Shard, GammaShardsMergeToTheUnshardedFileByteForByte) {
  const std::string model = "builtin:gaussian:shape=1x4x4,mean=0.2,std=0.3,schedule=vp_discrete";
  const std::string data = tmp("shard_gamma_data.npy");
  torch::manual_seed(5);
  scoreflow::io::write_npy(data, scoreflow::io::from_tensor((0.2 + 0.3 * torch::randn({230, 1, 4, 4})).clamp(-1, 1)));
  const std::string unseeded =
      "estimate-gamma --model " + model + " --data " + data + " --timesteps 12 --num-images 230 --batch 40";
  const std::string base = unseeded + " --seed 3";
  const std::string full = tmp("shard_gamma_full.json"), devs = tmp("shard_gamma_devs.json");
  std::filesystem::remove(full);
  std::filesystem::remove(devs);
  ASSERT_EQ(run(base + " --out " + full).code, 0);
  // 230 images in 6 batches of 40, 3 shards of 2 batches; shard 2 from Slurm's variables.
  const std::string part = tmp("shard_gamma.json");
  ASSERT_EQ(run(base + " --out " + part + " --shard 0/3").code, 0);
  ASSERT_EQ(run(base + " --out " + part + " --shard 1/3 --devices cpu,cpu").code, 0);
  Result s2 = run_with_env({{"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "3"}}, base + " --out " + part + " --json");
  ASSERT_EQ(s2.code, 0) << s2.err;
  EXPECT_EQ(nlohmann::json::parse(s2.out)["shard"]["source"], "SLURM_PROCID/SLURM_NTASKS");
  EXPECT_EQ(nlohmann::json::parse(s2.out)["image_range"], nlohmann::json({160, 230}));
  const std::string merged = tmp("shard_gamma_merged.json");
  std::string files;
  for (int i : {2, 0, 1}) files += " " + tmp("shard_gamma.shard-" + std::to_string(i) + "-of-3.npz");
  Result m = run("merge " + merged + files);
  ASSERT_EQ(m.code, 0) << m.err;
  const std::string expected = slurp(full);
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(slurp(merged), expected) << "merged Gamma differs from the unsharded one";
  // --devices in one process, no shards: the unsharded file again.
  ASSERT_EQ(run(base + " --out " + devs + " --devices cpu,cpu").code, 0);
  EXPECT_EQ(slurp(devs), expected);
  // The merged file is a working Gamma file.
  EXPECT_EQ(run("trajectory --model " + model + " --gamma " + merged + " --steps 4").code, 0);
  // Shards of another seed do not mix in.
  ASSERT_EQ(run(unseeded + " --out " + tmp("shard_gamma_s7.json") + " --shard 1/3 --seed 7").code, 0);
  expect_refused("merge " + merged + " " + tmp("shard_gamma.shard-0-of-3.npz") + " " +
                     tmp("shard_gamma_s7.shard-1-of-3.npz") + " " + tmp("shard_gamma.shard-2-of-3.npz"),
                 "seed is '7' there but '3'");
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

TEST(Shard, TorchScriptModelShardsAndDevicesEqualOneRun) {
  const std::string model = std::string(SCOREFLOW_FIXTURE_DIR) + "/tiny_eps.pt";
  const std::string cmd = "sample --model " + model + " --sampler heun --steps 4 --seeds 3-12 --batch 4";
  const std::string one = tmp("shard_ts_one.npz"), part = tmp("shard_ts.npz"), merged = tmp("shard_ts_merged.npz");
  ASSERT_EQ(run(cmd + " --npz " + one).code, 0);
  ASSERT_EQ(run(cmd + " --npz " + part + " --shard 0/2 --devices cpu,cpu").code, 0);
  ASSERT_EQ(run(cmd + " --npz " + part + " --shard 1/2").code, 0);
  Result m =
      run("merge --out " + merged + " " + tmp("shard_ts.shard-0-of-2.npz") + " " + tmp("shard_ts.shard-1-of-2.npz"));
  ASSERT_EQ(m.code, 0) << m.err;
  EXPECT_EQ(slurp(merged), slurp(one));
  // The per-seed PNGs of all shards share one folder.
  const std::string dir = tmp("shard_ts_pngs");
  std::filesystem::remove_all(dir);
  for (const char* s : {"0/2", "1/2"}) ASSERT_EQ(run(cmd + " --out-dir " + dir + " --shard " + s).code, 0);
  int pngs = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) pngs += e.path().extension() == ".png";
  EXPECT_EQ(pngs, 10);
}
