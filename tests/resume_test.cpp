// Nothing lost on a kill: ChunkStore refuses mixed settings, and `scoreflow sample` killed with
// SIGKILL after its first chunk resumes on the same command, redoes no finished chunk, and ends
// with files byte-identical to an uninterrupted run.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "scoreflow/checkpoint.h"
#include "scoreflow/error.h"
#include "tests/support/cli_run.h"

namespace fs = std::filesystem;
using scoreflow::testing_cli::fresh_dir;
using scoreflow::testing_cli::Outcome;
using scoreflow::testing_cli::run_cli;
using scoreflow::testing_cli::slurp;

namespace {

scoreflow::io::NpyArray small_array(float value) {
  scoreflow::io::NpyArray a{"<f4", {2}, std::vector<uint8_t>(8)};
  std::memcpy(a.data.data(), &value, 4);
  return a;
}

std::vector<std::string> chunk_files(const std::string& parts) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(parts, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("samples-", 0) == 0 && name.find(".tmp.") == std::string::npos) out.push_back(name);
  }
  return out;
}

}  // namespace

TEST(ChunkStore, KeepsChunksAndRefusesOtherSettingsUnlessOverwrite) {
  const std::string dir = fresh_dir("resume_store") + "/out.npz.parts";
  const scoreflow::io::Settings a = {{"sampler", "heun"}, {"seeds", "0-7"}};
  {
    scoreflow::io::ChunkStore store(dir, a, false, "--npz");
    EXPECT_FALSE(fs::exists(dir)) << "nothing is created before the first chunk";
    store.save("samples-0-2", small_array(1.5f));
  }
  std::ofstream(dir + "/samples-2-4.npy.tmp.123.0") << "half a chunk from a killed writer";
  {
    scoreflow::io::ChunkStore again(dir, a, false, "--npz");
    EXPECT_EQ(again.chunks(), std::vector<std::string>{"samples-0-2"});
    ASSERT_TRUE(again.load("samples-0-2").has_value());
    EXPECT_FALSE(fs::exists(dir + "/samples-2-4.npy.tmp.123.0")) << "stale temporary kept";
  }
  try {
    scoreflow::io::ChunkStore other(dir, {{"sampler", "euler"}, {"seeds", "0-7"}}, false, "--npz");
    FAIL() << "different settings accepted";
  } catch (const scoreflow::Error& e) {
    EXPECT_NE(std::string(e.what()).find("sampler was 'heun', now 'euler'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("or start over with overwrite"), std::string::npos) << e.what();
    ASSERT_EQ(e.fields().size(), 2u);  // the output the run belongs to, then how to start over
    EXPECT_EQ(e.fields()[0].name, "--npz");
    EXPECT_EQ(e.fields()[1].name, "overwrite");
  }
  EXPECT_THROW(scoreflow::io::ChunkStore(dir, {{"sampler", "heun"}}, false, "--npz"), scoreflow::Error);
  scoreflow::io::ChunkStore fresh(dir, {{"sampler", "euler"}, {"seeds", "0-7"}}, true, "--npz");
  EXPECT_TRUE(fresh.chunks().empty());
  EXPECT_FALSE(fs::exists(dir)) << "--overwrite clears the old run";
  EXPECT_NE(scoreflow::io::hash_text("a"), scoreflow::io::hash_text("b"));
}

TEST(Resume, SampleKilledAfterFirstChunkResumesToIdenticalFiles) {
  const std::string ref = fresh_dir("resume_ref"), run = fresh_dir("resume_run");
  // 24 chunks of 2 samples, each a few hundred network calls: long enough to kill mid-way.
  const std::vector<std::string> common = {"sample",    "--model", std::string(SCOREFLOW_FIXTURE_DIR) + "/tiny_eps.pt",
                                           "--sampler", "heun",    "--steps",
                                           "150",       "--seeds", "100-147",
                                           "--batch",   "2"};
  auto with = [&](const std::string& dir, std::vector<std::string> extra) {
    std::vector<std::string> args = common;
    for (const char* flag : {"--npz", "--out-dir"})
      args.push_back(flag), args.push_back(dir + (flag[2] == 'n' ? "/s.npz" : "/png"));
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  Outcome r = run_cli(with(ref, {}), ref + "/log");
  ASSERT_EQ(r.code, 0) << r.err;

  // Start, wait for the first chunk to land, kill -9.
  const std::string parts = run + "/s.npz.parts";
  pid_t pid = scoreflow::testing_cli::spawn_cli(with(run, {}), run + "/killed.out", run + "/killed.err");
  ASSERT_GT(pid, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (chunk_files(parts).empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ::kill(pid, SIGKILL);
  Outcome killed = scoreflow::testing_cli::wait_cli(pid, run + "/killed.out", run + "/killed.err");
  ASSERT_EQ(killed.signal, SIGKILL) << "the run ended before it could be killed (make it longer): " << killed.err;
  const size_t finished = chunk_files(parts).size();
  ASSERT_GE(finished, 1u);
  ASSERT_LT(finished, 24u);
  EXPECT_FALSE(fs::exists(run + "/s.npz")) << "final archive written by a killed run";

  // Other settings are refused, naming the setting, and leave the finished chunks alone.
  std::vector<std::string> euler = with(run, {});
  euler[4] = "euler";
  Outcome mixed = run_cli(euler, run + "/mixed");
  EXPECT_EQ(mixed.code, 1);
  EXPECT_NE(mixed.err.find("sampler was 'heun', now 'euler'"), std::string::npos) << mixed.err;
  std::vector<std::string> seeds = with(run, {});
  seeds[8] = "100-149";
  Outcome mixed_seeds = run_cli(seeds, run + "/mixed2");
  EXPECT_NE(mixed_seeds.err.find("seeds was '48 seeds"), std::string::npos) << mixed_seeds.err;
  EXPECT_EQ(chunk_files(parts).size(), finished);

  std::vector<std::string> batch = with(run, {});
  batch[10] = "4";
  EXPECT_NE(run_cli(batch, run + "/mixed3").err.find("batch was '2', now '4'"), std::string::npos);

  // The same command resumes, redoing no finished chunk.
  std::vector<std::string> again = with(run, {"--json"});
  Outcome resumed = run_cli(again, run + "/resumed");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_EQ(nlohmann::json::parse(resumed.out)["resumed_samples"], 2 * finished);
  EXPECT_FALSE(fs::exists(parts)) << "chunk folder left after the outputs were written";

  EXPECT_TRUE(slurp(run + "/s.npz") == slurp(ref + "/s.npz")) << "resumed archive differs from an uninterrupted run";
  size_t pngs = 0;
  for (const auto& e : fs::directory_iterator(ref + "/png")) {
    const std::string name = e.path().filename().string();
    EXPECT_TRUE(slurp(run + "/png/" + name) == slurp(e.path().string())) << name << " differs";
    ++pngs;
  }
  EXPECT_EQ(pngs, 48u);
  std::vector<std::string> extra;
  for (const auto& e : fs::directory_iterator(run + "/png"))
    if (!fs::exists(ref + "/png/" + e.path().filename().string())) extra.push_back(e.path().filename().string());
  EXPECT_EQ(extra, std::vector<std::string>{}) << "files left in --out-dir";
}
