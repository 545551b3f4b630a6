// Nothing lost on a kill, for eval and compare: a run killed (SIGKILL, at a known chunk through the
// SCOREFLOW_TEST_KILL_AFTER_CHUNKS hook) resumes on the same command, reuses the finished chunks,
// refuses other settings naming them, and ends with the files of an uninterrupted run.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/cli_run.h"

namespace fs = std::filesystem;
using scoreflow::testing_cli::fresh_dir;
using scoreflow::testing_cli::Outcome;
using scoreflow::testing_cli::run_cli;
using scoreflow::testing_cli::slurp;

namespace {

size_t chunk_count(const std::string& parts) {
  size_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(parts, ec))
    if (e.path().extension() == ".npy") ++n;
  return n;
}

/// A JSON report without its wall-clock fields (the only thing two identical runs differ in).
nlohmann::json without_times(const std::string& path) {
  nlohmann::json doc = nlohmann::json::parse(slurp(path));
  doc.erase("wall_seconds");
  doc.erase("feature_images_per_second");  // a rate, like the wall time
  return doc;
}

/// CSV rows without the `seconds` column (wall time of each cell).
std::string csv_without_seconds(const std::string& path) {
  std::stringstream in(slurp(path)), out;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields;
    std::stringstream ls(line);
    std::string f;
    while (std::getline(ls, f, ',')) fields.push_back(f);
    if (fields.size() > 5) fields.erase(fields.begin() + 5);
    for (const auto& x : fields) out << x << ',';
    out << '\n';
  }
  return out.str();
}

ino_t inode(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

/// Runs `args` killed after `k` chunks; expects the SIGKILL and `k` chunks in `parts`.
void kill_after(const std::vector<std::string>& args, int k, const std::string& parts, const std::string& scratch) {
  Outcome killed = run_cli(args, scratch, {"SCOREFLOW_TEST_KILL_AFTER_CHUNKS=" + std::to_string(k)});
  ASSERT_EQ(killed.signal, SIGKILL) << "exit " << killed.code << ": " << killed.err;
  ASSERT_EQ(chunk_count(parts), static_cast<size_t>(k));
}

/// The reference side of the eval fid resume tests: samples of another Gaussian, as an .npz in
/// `dir` (empty when sampling failed).
std::string fid_reference(const std::string& dir) {
  const std::string ref_npz = dir + "/ref.npz";
  const Outcome r = run_cli({"sample", "--model", "builtin:gaussian:shape=1x4x4", "--sampler", "heun", "--steps", "8",
                             "--seeds", "100-163", "--npz", ref_npz},
                            dir + "/sample");
  return r.code == 0 ? ref_npz : "";
}

}  // namespace

TEST(ResumeEval, CompareKilledAfterTwoCellsResumesToTheSameTablePlotAndGrids) {
  const std::string ref = fresh_dir("resume_eval_cmp_ref"), run = fresh_dir("resume_eval_cmp_run");
  auto args = [](const std::string& dir, const std::string& nfe) {
    return std::vector<std::string>{"compare",    "--model",    "builtin:gaussian:shape=1x6x6,mean=0.3,std=0.7",
                                    "--samplers", "euler,heun", "--nfe",
                                    nfe,          "--num",      "24",
                                    "--batch",    "8",          "--metric",
                                    "w2",         "--out-dir",  dir};
  };
  Outcome r = run_cli(args(ref, "2,4,6"), ref + "/log");
  ASSERT_EQ(r.code, 0) << r.err;

  const std::string parts = run + ".parts";  // jobs::chunk_folder(out_dir)
  fs::remove_all(parts);
  kill_after(args(run, "2,4,6"), 2, parts, run + "/killed");
  EXPECT_FALSE(fs::exists(run + "/table.md")) << "final table written by a killed run";
  const ino_t first_grid = inode(run + "/grid_euler_nfe2.png");
  ASSERT_NE(first_grid, 0u) << "the first finished cell's grid is missing";

  Outcome mixed = run_cli(args(run, "2,4"), run + "/mixed");
  EXPECT_EQ(mixed.code, 1);
  EXPECT_NE(mixed.err.find("nfe was '2,4,6', now '2,4'"), std::string::npos) << mixed.err;
  EXPECT_EQ(chunk_count(parts), 2u) << "a refused run touched the finished cells";

  Outcome resumed = run_cli(args(run, "2,4,6"), run + "/resumed");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("2 finished chunks reused"), std::string::npos) << resumed.err;
  EXPECT_EQ(inode(run + "/grid_euler_nfe2.png"), first_grid) << "a finished cell was redone";
  EXPECT_FALSE(fs::exists(parts)) << "chunk folder left after the outputs were written";

  for (const char* file : {"table.md", "plot.svg", "grid_euler_nfe2.png", "grid_euler_nfe6.png", "grid_heun_nfe6.png"})
    EXPECT_TRUE(slurp(run + "/" + file) == slurp(ref + "/" + file)) << file << " differs from an uninterrupted run";
  EXPECT_EQ(csv_without_seconds(run + "/results.csv"), csv_without_seconds(ref + "/results.csv"));

  // --overwrite starts over instead of resuming.
  kill_after(args(run, "2,4,6"), 1, parts, run + "/killed2");
  Outcome fresh = run_cli(
      [&] {
        auto a = args(run, "2,4");
        a.push_back("--overwrite");
        return a;
      }(),
      run + "/fresh");
  ASSERT_EQ(fresh.code, 0) << fresh.err;
  EXPECT_EQ(fresh.err.find("reused"), std::string::npos) << fresh.err;
}

TEST(ResumeEval, ScoreMatchingAndWboundResumeLevelByLevel) {
  const std::string dir = fresh_dir("resume_eval_sm");
  const std::string model = "builtin:gaussian:shape=4,mean=0.5,std=0.8";
  const std::string data = "builtin:gaussian:shape=4,mean=0.4,std=0.9";
  auto sm = [&](const std::string& out, const std::string& seed) {
    return std::vector<std::string>{"eval",        "score-matching", "--model", model,    "--data", data,    "--sigmas",
                                    "0.1,0.5,2,8", "--num-images",   "64",      "--seed", seed,     "--out", out};
  };
  ASSERT_EQ(run_cli(sm(dir + "/ref.json", "3"), dir + "/ref").code, 0);
  kill_after(sm(dir + "/run.json", "3"), 2, dir + "/run.json.parts", dir + "/killed");
  EXPECT_FALSE(fs::exists(dir + "/run.json"));
  Outcome mixed = run_cli(sm(dir + "/run.json", "4"), dir + "/mixed");
  EXPECT_NE(mixed.err.find("seed was '3', now '4'"), std::string::npos) << mixed.err;
  Outcome resumed = run_cli(sm(dir + "/run.json", "3"), dir + "/resumed");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("2 finished chunks reused"), std::string::npos) << resumed.err;
  EXPECT_EQ(without_times(dir + "/run.json"), without_times(dir + "/ref.json"));
  EXPECT_FALSE(fs::exists(dir + "/run.json.parts"));

  // wbound: 3 levels of score matching + 3 of Lipschitz estimates + the coupling = 7 chunks.
  auto wb = [&](const std::string& out) {
    return std::vector<std::string>{"eval",         "wbound",      "--model",      model,      "--data",
                                    data,           "--sigmas",    "0.2,1,5",      "--points", "4",
                                    "--iterations", "8",           "--num-images", "32",       "--ode-samples",
                                    "16",           "--ode-steps", "12",           "--out",    out};
  };
  ASSERT_EQ(run_cli(wb(dir + "/wref.json"), dir + "/wref").code, 0);
  kill_after(wb(dir + "/wrun.json"), 4, dir + "/wrun.json.parts", dir + "/wkilled");
  Outcome wresumed = run_cli(wb(dir + "/wrun.json"), dir + "/wresumed");
  ASSERT_EQ(wresumed.code, 0) << wresumed.err;
  EXPECT_NE(wresumed.err.find("4 finished chunks reused"), std::string::npos) << wresumed.err;
  EXPECT_EQ(without_times(dir + "/wrun.json"), without_times(dir + "/wref.json"));
}

TEST(ResumeEval, FidWithModelResumesItsSampleChunks) {
  const std::string dir = fresh_dir("resume_eval_fid");
  const std::string ref_npz = fid_reference(dir);
  ASSERT_FALSE(ref_npz.empty());
  auto fid = [&](const std::string& out, const std::string& sampler) {
    return std::vector<std::string>{"eval",       "fid",   "--features", "none",
                                    "--ref-data", ref_npz, "--model",    "builtin:gaussian:shape=1x4x4,std=0.8",
                                    "--sampler",  sampler, "--steps",    "6",
                                    "--seeds",    "0-29",  "--batch",    "6",
                                    "--out",      out};
  };
  Outcome r = run_cli((fid(dir + "/ref.json", "heun")), dir + "/ref");
  ASSERT_EQ(r.code, 0) << r.err;
  kill_after((fid(dir + "/run.json", "heun")), 2, dir + "/run.json.parts", dir + "/killed");
  Outcome mixed = run_cli((fid(dir + "/run.json", "euler")), dir + "/mixed");
  EXPECT_NE(mixed.err.find("sampler was 'heun', now 'euler'"), std::string::npos) << mixed.err;
  Outcome resumed = run_cli((fid(dir + "/run.json", "heun")), dir + "/resumed");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("2 finished chunks reused"), std::string::npos) << resumed.err;
  EXPECT_EQ(without_times(dir + "/run.json"), without_times(dir + "/ref.json"));
}
