// The `train-amed` command: train then sample with the predictor and its table, restarts that keep
// the run with the lowest end-to-end error, resume after a kill, and the refusals as one error line
// naming flags (the library side of AMED: amed_test.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "scoreflow/amed.h"

#ifdef SCOREFLOW_CLI_PATH
#include "tests/support/cli_run.h"

using scoreflow::AmedPredictor;

namespace {

using CliResult = scoreflow::testing_cli::Result;
CliResult cli(const std::string& args) { return scoreflow::testing_cli::run(args); }

std::string tmp(const std::string& name) {
  std::string dir = ::testing::TempDir() + "/scoreflow_amed";
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

}  // namespace

TEST(AmedCli, TrainThenSampleWithPredictorAndTable) {
  const std::string pt = tmp("cli_amed.pt"), table = tmp("cli_amed.json"), log = tmp("cli_loss.csv");
  CliResult t =
      cli("train-amed --model builtin:ring8 --student amed --teacher heun --steps 3 --afs --num-trajectories 256 "
          "--batch 128 --out " +
          pt + " --table " + table + " --log " + log + " --json");
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("\"nfe\": 5"), std::string::npos) << t.out;
  EXPECT_TRUE(std::filesystem::exists(log));
  CliResult s = cli("sample --model builtin:ring8 --sampler amed --sampler-args predictor=" + pt +
                    " --schedule vp_time_uniform --nfe 5 --seeds 0-7 --json");
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_NE(s.out.find("\"nfe\": 5"), std::string::npos) << s.out;
  CliResult u = cli("sample --model builtin:ring8 --sampler amed --sampler-args table=" + table +
                    " --schedule vp_time_uniform --steps 3 --seeds 0-7 --json");
  ASSERT_EQ(u.code, 0) << u.err;
  EXPECT_NE(u.out.find("\"final\": \"none\""), std::string::npos) << u.out;
  // The convention the predictor was trained for is recorded; another is refused, naming the field.
  CliResult w = cli("sample --model builtin:ring8 --sampler amed --sampler-args predictor=" + pt +
                    " --schedule vp_time_uniform --steps 4 --final zero --seeds 0 --json");
  EXPECT_EQ(w.code, 1);
  EXPECT_NE(w.err.find("field 'final' differs"), std::string::npos) << w.err;
  // A predictor for another grid: one error line naming the field.
  CliResult v =
      cli("sample --model builtin:ring8 --sampler amed --sampler-args predictor=" + pt + " --steps 6 --seeds 0 --json");
  EXPECT_EQ(v.code, 1);
  EXPECT_EQ(v.err.rfind("error: ", 0), 0u) << v.err;
  EXPECT_NE(v.err.find("'sigmas' differs"), std::string::npos) << v.err;
  // train-amed's default grid for AMED-Solver is the authors' (vp_time_uniform); the refusal names it.
  EXPECT_NE(v.err.find("--schedule vp_time_uniform"), std::string::npos) << v.err;
}

TEST(AmedCli, RestartsKeepTheRunWithTheLowestEndToEndError) {
  // vp_time_uniform ρ = 2 on gmm 2-D is a grid where the training seed decides between a poor and a
  // good solution (docs/samplers.md); --restarts trains seeds 1..4 and keeps the best end-to-end run.
  const std::string common =
      "train-amed --model builtin:gmm:shape=2 --student amed --teacher heun --steps 3 --afs "
      "--M 3 --scale-time 0.2 --schedule vp_time_uniform --schedule-args rho=2 "
      "--num-trajectories 2560 --json ";
  const std::string best = tmp("restarts_best.pt"), log = tmp("restarts.csv");
  CliResult r = cli(common + "--seed 1 --restarts 4 --out " + best + " --log " + log);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto doc = nlohmann::json::parse(r.out);
  ASSERT_EQ(doc.at("restarts").size(), 4u);
  double lowest = 1e300, highest = 0;
  uint64_t argmin = 0;
  for (const auto& run : doc.at("restarts")) {
    const double v = run.at("validation_rms").get<double>();
    EXPECT_TRUE(std::isfinite(v) && v > 0) << run;
    if (v < lowest) lowest = v, argmin = run.at("seed").get<uint64_t>();
    highest = std::max(highest, v);
  }
  EXPECT_EQ(doc.at("seed").get<uint64_t>(), argmin);
  EXPECT_DOUBLE_EQ(doc.at("validation_rms").get<double>(), lowest);
  EXPECT_LT(lowest, 0.5 * highest) << "expected the seeds to land in different basins here";
  // The kept predictor is exactly the one-seed run with that seed, and records its seed and error.
  const AmedPredictor kept = AmedPredictor::load(best);
  EXPECT_EQ(kept.record().seed, argmin);
  EXPECT_DOUBLE_EQ(kept.record().validation_rms, lowest);
  const std::string single = tmp("restarts_single.pt");
  CliResult s = cli(common + "--seed " + std::to_string(argmin) + " --out " + single);
  ASSERT_EQ(s.code, 0) << s.err;
  const auto a = kept.table(), b = AmedPredictor::load(single).table();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].r, b[i].r);
    EXPECT_EQ(a[i].c, b[i].c);
    EXPECT_EQ(a[i].a, b[i].a);
  }
  // The loss log holds every restart, each under its seed.
  std::ifstream in(log);
  std::string header, line;
  std::getline(in, header);
  EXPECT_EQ(header, "seed,batch,step,sigma,sigma_next,loss");
  std::set<std::string> seeds;
  while (std::getline(in, line)) seeds.insert(line.substr(0, line.find(',')));
  EXPECT_EQ(seeds, (std::set<std::string>{"1", "2", "3", "4"}));

  const std::string never = tmp("restarts_never.pt");
  std::filesystem::remove(never);
  CliResult z = cli(common + "--restarts 2 --validate 0 --out " + never);
  EXPECT_EQ(z.code, 1);
  EXPECT_EQ(z.err.rfind("error: --restarts 2 keeps the run with the lowest end-to-end error", 0), 0u) << z.err;
  CliResult n = cli(common + "--restarts 0 --out " + never);
  EXPECT_EQ(n.code, 1);
  EXPECT_NE(n.err.find("error: --restarts must be >= 1, got 0"), std::string::npos) << n.err;
  EXPECT_FALSE(std::filesystem::exists(never));
}

TEST(AmedCli, RestartsResumeAfterAKillAndEndAsAnUninterruptedRun) {
  using scoreflow::testing_cli::fresh_dir;
  using scoreflow::testing_cli::Outcome;
  using scoreflow::testing_cli::run_cli;
  using scoreflow::testing_cli::slurp;
  const std::string dir = fresh_dir("amed_restarts_resume");
  auto args = [&](const std::string& out, const std::string& lr) {
    return std::vector<std::string>{"train-amed",
                                    "--model",
                                    "builtin:gmm:shape=2",
                                    "--student",
                                    "amed",
                                    "--teacher",
                                    "heun",
                                    "--steps",
                                    "3",
                                    "--afs",
                                    "--M",
                                    "3",
                                    "--num-trajectories",
                                    "1280",
                                    "--seed",
                                    "1",
                                    "--restarts",
                                    "4",
                                    "--lr",
                                    lr,
                                    "--json",
                                    "--out",
                                    out,
                                    "--log",
                                    out + ".csv"};
  };
  const Outcome whole = run_cli(args(dir + "/whole.pt", "0.005"), dir + "/whole");
  ASSERT_EQ(whole.code, 0) << whole.err;
  // Killed right after the second finished restart was stored; the same command then reuses both.
  const std::string out = dir + "/run.pt";
  const Outcome killed = run_cli(args(out, "0.005"), dir + "/killed", {"SCOREFLOW_TEST_KILL_AFTER_CHUNKS=2"});
  ASSERT_EQ(killed.signal, SIGKILL) << "exit " << killed.code << ": " << killed.err;
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_TRUE(std::filesystem::exists(out + ".parts/seed-2.pt"));
  // Other settings are refused, naming the one that differs, and leave the finished restarts alone.
  const Outcome other = run_cli(args(out, "0.001"), dir + "/other");
  EXPECT_EQ(other.code, 1);
  EXPECT_NE(other.err.find("with different settings: lr was"), std::string::npos) << other.err;
  EXPECT_TRUE(std::filesystem::exists(out + ".parts/seed-2.pt"));
  const Outcome resumed = run_cli(args(out, "0.005"), dir + "/resumed");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("2 finished restarts reused"), std::string::npos) << resumed.err;
  EXPECT_EQ(resumed.err.find("[seed 2]"), std::string::npos) << "seed 2 was trained again: " << resumed.err;
  auto report = [](const std::string& text) {
    nlohmann::json doc = nlohmann::json::parse(text);
    doc.erase("wall_seconds");
    doc.erase("out");
    doc.erase("log");
    return doc;
  };
  EXPECT_EQ(report(resumed.out), report(whole.out));
  EXPECT_EQ(slurp(out + ".csv"), slurp(dir + "/whole.pt.csv"));
  const auto a = AmedPredictor::load(out).table(), b = AmedPredictor::load(dir + "/whole.pt").table();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].r, b[i].r) << i;
  EXPECT_FALSE(std::filesystem::exists(out + ".parts"));
}

TEST(AmedCli, RefusesUndefinedTeacherStudentPairs) {
  const std::string pt = tmp("never.pt");
  std::filesystem::remove(pt);
  CliResult r = cli("train-amed --model builtin:ring8 --student amed --teacher ipndm --steps 4 --out " + pt);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("valid: --student amed --teacher heun"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(pt));
}

#endif  // SCOREFLOW_CLI_PATH
