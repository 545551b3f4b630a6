// `scoreflow eval ...` and `scoreflow compare` end to end: reports, numpy interop of statistics,
// sweep outputs, and one `error:` line for each kind of bad input.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "scoreflow/npy.h"
#include "tests/support/cli_run.h"

namespace fs = std::filesystem;
using namespace scoreflow;
using namespace scoreflow::testing_cli;

namespace {

std::string write_points(const std::string& name, const torch::Tensor& pts) {
  std::string path = tmp(name);
  io::write_npy(path, io::from_tensor(pts.to(torch::kFloat32)));
  return path;
}

/// Feature network forward(x [B, 1, 4, 4]) -> [B, 3] (a fixed random projection), with or
/// without scoreflow.json {"input_shape": [1, 4, 4]}.
std::string feature_net(const std::string& name, bool with_meta, bool nan = false) {
  torch::jit::Module m("Features");
  torch::manual_seed(2);
  m.register_parameter("w", torch::randn({16, 3}), false);
  m.define(nan ? "def forward(self, x):\n    return torch.matmul(x.flatten(1), self.w) * float('nan')\n"
               : "def forward(self, x):\n    return torch.matmul(x.flatten(1), self.w)\n");
  std::string path = tmp(name);
  if (with_meta)
    m.save(path, {{"scoreflow.json", R"({"input_shape": [1, 4, 4], "data_range": [-1, 1]})"}});
  else
    m.save(path);
  return path;
}

}  // namespace

TEST(EvalCli, ScoreMatchingReportsTheIdentityPerLevel) {
  torch::manual_seed(0);
  std::string data = write_points("sm_points.npy", torch::randn({30, 2}) * 0.8 + 0.3);
  std::string out = tmp("sm_report.json");
  Result r = run("eval score-matching --model builtin:gaussian:shape=2,std=0.6 --data " + data +
                 " --timesteps 4 --num-images 300 --json --out " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  ASSERT_EQ(doc["rows"].size(), 4u);
  for (const auto& row : doc["rows"]) {
    EXPECT_LT(std::abs(row["identity_residual"].get<double>()), 4 * row["identity_residual_se"].get<double>() + 1e-9)
        << row.dump();
    EXPECT_NEAR(row["dsm_per_dim"].get<double>() * 2, row["dsm"].get<double>(), 1e-9);
  }
  EXPECT_TRUE(fs::exists(out));
  Result text =
      run("eval score-matching --model builtin:gaussian:shape=2 --data " + data + " --sigmas 0.5,2 --num-images 20");
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("d(1-Gamma*)"), std::string::npos);
  expect_refused("eval score-matching --model builtin:gaussian:shape=3 --data " + data, "values");
}

TEST(EvalCli, WboundShowsTheTrueW2ForGaussians) {
  Result r = run(
      "eval wbound --model builtin:gaussian:shape=2,mean=0.4,std=1.5 --data builtin:gaussian:shape=2 --timesteps 30 "
      "--num-images 500 --points 2 --iterations 5 --ode-samples 200 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  const double w2 = std::sqrt(2 * 0.16 + 2 * 0.25);
  EXPECT_NEAR(doc["true_w2"].get<double>(), w2, 1e-9);
  EXPECT_GE(doc["kwon"]["bound"].get<double>(), w2);
  EXPECT_NEAR(doc["su_coupling"]["value"].get<double>(), w2, 0.15 * w2);
  EXPECT_EQ(doc["rows"].size(), 30u);
}

TEST(EvalCli, FidOfIdenticalDataIsZeroAndStatsRoundTripWithNumpy) {
  torch::manual_seed(1);
  std::string data = write_points("fd_points.npy", torch::randn({200, 3}) * torch::tensor({1.0, 0.5, 2.0}) + 1);
  Result same = run("eval fid --features none --ref-data " + data + " --samples " + data + " --json");
  ASSERT_EQ(same.code, 0) << same.err;
  auto doc = nlohmann::json::parse(same.out);
  EXPECT_NEAR(doc["fd"].get<double>(), 0.0, 1e-9);
  EXPECT_NEAR(doc["sliced_w2_squared"].get<double>(), 0.0, 1e-12);

  // --save-stats: numpy reads mu [3] and sigma [3, 3] as float64, equal to mean / np.cov.
  std::string stats = tmp("fd_stats.npz");
  Result save = run("eval fid --features none --ref-data " + data + " --save-stats " + stats);
  ASSERT_EQ(save.code, 0) << save.err;
  std::string check = "/usr/bin/python3 -c \"import numpy as n; s=n.load('" + stats + "'); x=n.load('" + data +
                      "').astype(n.float64); assert sorted(s.files)==['mu','sigma'], s.files; "
                      "assert s['mu'].dtype==n.float64 and s['mu'].shape==(3,); "
                      "assert s['sigma'].dtype==n.float64 and s['sigma'].shape==(3,3); "
                      "assert n.allclose(s['mu'], x.mean(0), rtol=1e-12, atol=1e-12); "
                      "assert n.allclose(s['sigma'], n.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)\"";
  EXPECT_EQ(std::system(check.c_str()), 0);
  Result from_stats = run("eval fid --features none --ref " + stats + " --samples " + data + " --json");
  ASSERT_EQ(from_stats.code, 0) << from_stats.err;
  EXPECT_NEAR(nlohmann::json::parse(from_stats.out)["fd"].get<double>(), 0.0, 1e-9);

  // Statistics written by numpy are read back: a shifted mean gives FD = |Δμ|².
  std::string shifted = tmp("fd_shifted.npz");
  std::string make = "/usr/bin/python3 -c \"import numpy as n; x=n.load('" + data + "').astype(n.float64); n.savez('" +
                     shifted + "', mu=x.mean(0)+n.array([0.5,0,0]), sigma=n.cov(x, rowvar=False))\"";
  ASSERT_EQ(std::system(make.c_str()), 0);
  Result shift = run("eval fid --features none --ref " + shifted + " --samples " + data + " --json");
  ASSERT_EQ(shift.code, 0) << shift.err;
  EXPECT_NEAR(nlohmann::json::parse(shift.out)["fd"].get<double>(), 0.25, 1e-6);
}

TEST(EvalCli, FidThroughAFeatureNetworkWithChannelAndSizeAdaptation) {
  // 3x8x8 images → the network's [1, 4, 4]: luminance + bilinear resize, reported as notes.
  torch::manual_seed(4);
  std::string images = tmp("fd_images.npy");
  io::write_npy(images, io::from_tensor(torch::rand({20, 3, 8, 8}) * 2 - 1));
  std::string net = feature_net("feat_meta.pt", true);
  Result r = run("eval fid --features " + net + " --ref-data " + images + " --samples " + images + " --kid --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["feature_dim"], 3);
  EXPECT_NEAR(doc["fd"].get<double>(), 0.0, 1e-9);
  EXPECT_TRUE(doc.contains("kid"));
  std::string notes = doc["notes"].dump();
  EXPECT_NE(notes.find("luminance"), std::string::npos) << notes;
  EXPECT_NE(notes.find("resized 8x8 -> 4x4"), std::string::npos) << notes;
  // From a model: gmm 1x4x4 samples through the same network.
  Result m = run("eval fid --features " + net + " --ref-data " + images +
                 " --model builtin:gmm:shape=1x4x4,k=2 --steps 4 --seeds 0-9 --json");
  ASSERT_EQ(m.code, 0) << m.err;
  EXPECT_GT(nlohmann::json::parse(m.out)["fd"].get<double>(), 0.0);
  // The feature pass's rate after the first batch (bench/feature_throughput.sh reads it), with
  // explicit --device cpu giving the same distance as the default.
  Result batched = run("eval fid --features " + net + " --ref-data " + images + " --samples " + images +
                       " --batch 8 --device cpu --json");
  ASSERT_EQ(batched.code, 0) << batched.err;
  auto b = nlohmann::json::parse(batched.out);
  EXPECT_EQ(b["feature_device"], "cpu");
  EXPECT_GT(b["feature_images_per_second"].get<double>(), 0.0);
  EXPECT_NEAR(b["fd"].get<double>(), doc["fd"].get<double>(), 1e-9);
}

TEST(EvalCli, FidOnSeveralDevicesEqualsOneDevice) {
  // --devices splits the samples (and the features) in whole batches over one thread per device;
  // merged moments equal one pass up to rounding, and the kept rows (KID) come back in row order.
  torch::manual_seed(6);
  std::string images = tmp("fd_dev_images.npy");
  io::write_npy(images, io::from_tensor(torch::rand({23, 1, 4, 4}) * 2 - 1));
  std::string net = feature_net("feat_dev.pt", true);
  const std::string model =
      " --model builtin:gmm:shape=1x4x4,k=2 --steps 4 --seeds 0-18 --batch 4 --kid --kid-subsets 5";
  Result one = run("eval fid --features " + net + " --ref-data " + images + model + " --json");
  ASSERT_EQ(one.code, 0) << one.err;
  std::string report = tmp("fd_dev_report.json");
  fs::remove(report);
  Result three = run("eval fid --features " + net + " --ref-data " + images + model + " --devices cpu,cpu,cpu --out " +
                     report + " --json");
  ASSERT_EQ(three.code, 0) << three.err;
  auto a = nlohmann::json::parse(one.out), b = nlohmann::json::parse(three.out);
  EXPECT_EQ(b["sample_count"], 19);
  EXPECT_EQ(b["reference_count"], 23);
  EXPECT_EQ(b["feature_device"], "cpu,cpu,cpu");
  EXPECT_GT(a["fd"].get<double>(), 0.0);
  EXPECT_NEAR(b["fd"].get<double>(), a["fd"].get<double>(), 1e-9 * a["fd"].get<double>());
  EXPECT_EQ(b["kid"]["mean"].get<double>(), a["kid"]["mean"].get<double>());  // same rows, same order
  EXPECT_TRUE(fs::exists(report));
  EXPECT_FALSE(fs::exists(report + ".parts")) << "finished batches are removed once the report is written";
  // Raw points (features none): the same, with the sliced W2 of the kept rows.
  std::string points = write_points("fd_dev_points.npy", torch::randn({41, 3}) * 2 + 1);
  std::string other = write_points("fd_dev_other.npy", torch::randn({37, 3}));
  const std::string raw = "eval fid --features none --ref-data " + other + " --samples " + points + " --batch 8 --json";
  Result p1 = run(raw), p2 = run(raw + " --devices cpu,cpu");
  ASSERT_EQ(p1.code, 0) << p1.err;
  ASSERT_EQ(p2.code, 0) << p2.err;
  auto q1 = nlohmann::json::parse(p1.out), q2 = nlohmann::json::parse(p2.out);
  EXPECT_NEAR(q2["fd"].get<double>(), q1["fd"].get<double>(), 1e-9 * q1["fd"].get<double>());
  EXPECT_EQ(q2["sliced_w2_squared"].get<double>(), q1["sliced_w2_squared"].get<double>());
}

TEST(EvalCli, FidRefusesBadInputWithOneErrorLine) {
  torch::manual_seed(5);
  std::string images = tmp("fd_bad_images.npy");
  io::write_npy(images, io::from_tensor(torch::rand({6, 3, 4, 4}) * 2 - 1));
  std::string points = write_points("fd_bad_points.npy", torch::randn({10, 2}));
  std::string one = write_points("fd_one.npy", torch::randn({1, 2}));
  torch::Tensor with_nan = torch::randn({10, 2});
  with_nan[7][1] = NAN;
  std::string nan_points = write_points("fd_nan.npy", with_nan);
  std::string mu_only = tmp("fd_mu_only.npz"), wrong_dim = tmp("fd_wrong_dim.npz");
  io::write_npz(mu_only, {{"mu", io::from_tensor(torch::zeros({2}, torch::kFloat64))}});
  io::write_npz(wrong_dim, {{"mu", io::from_tensor(torch::zeros({3}, torch::kFloat64))},
                            {"sigma", io::from_tensor(torch::eye(3, torch::kFloat64))}});
  std::string saved = tmp("fd_never.npz");
  // A network without input_shape fed 3-channel images its 16-input projection cannot take.
  expect_refused("eval fid --features " + feature_net("feat_plain.pt", false) + " --ref-data " + images +
                     " --samples " + images + " --save-stats " + saved,
                 "rejected input of shape [6, 3, 4, 4]", saved);
  expect_refused("eval fid --features none --ref " + mu_only + " --samples " + points, "no array 'sigma'");
  expect_refused("eval fid --features none --ref " + wrong_dim + " --samples " + points, "dimension 3");
  expect_refused("eval fid --features none --ref-data " + points + " --samples " + one, "at least 2 samples");
  expect_refused("eval fid --features none --ref-data " + points + " --samples " + nan_points, "NaN");
  // The per-batch checks are read back at the end; the failing batch (the second of three here) is
  // run again for a message that names the row.
  expect_refused("eval fid --features none --ref-data " + points + " --samples " + nan_points + " --batch 4",
                 "samples hold NaN or Inf (sample 7)");
  expect_refused("eval fid --features none --ref-data " + nan_points + " --samples " + points + " --batch 3",
                 "samples hold NaN or Inf (sample 7)");
  expect_refused(
      "eval fid --features none --ref-data " + points + " --samples " + points + " --device cpu --devices cpu,cpu",
      "give --device or --devices, not both");
  expect_refused("eval fid --features " + feature_net("feat_nan.pt", true, true) + " --ref-data " + images +
                     " --samples " + images,
                 "NaN");
  expect_refused("eval fid --features none --ref " + wrong_dim + " --samples " + points + " --kid", "--kid needs");
  if (!torch::cuda::is_available())
    expect_refused("eval fid --features none --ref-data " + points + " --samples " + points + " --device cuda",
                   "CUDA is not available");
}

TEST(CompareCli, GaussianSweepWritesTableCsvPlotAndW2FallsWithNfe) {
  std::string dir = tmp("compare_gauss");
  fs::remove_all(dir);
  Result r =
      run("compare --model builtin:gaussian:shape=2,mean=0.5,std=0.5 --samplers heun,euler --nfe 0,3,5,9,17 --num 200 "
          "--metric w2 --out-dir " +
          dir + " --log-x --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  ASSERT_EQ(doc["cells"].size(), 10u);
  std::vector<double> heun;
  for (const auto& c : doc["cells"]) {
    if (c["nfe_budget"] == 0) {
      EXPECT_TRUE(c.contains("error")) << c.dump();  // too small: reported in the cell, not fatal
      continue;
    }
    EXPECT_LE(c["nfe_used"].get<int>(), c["nfe_budget"].get<int>());
    if (c["sampler"] == "heun") heun.push_back(c["metric"].get<double>());
  }
  ASSERT_EQ(heun.size(), 4u);
  for (size_t i = 1; i < heun.size(); ++i) EXPECT_LT(heun[i], heun[i - 1]) << "heun W2 should fall with NFE";
  std::ifstream csv(dir + "/results.csv");
  std::string line;
  int rows = 0;
  std::getline(csv, line);
  EXPECT_EQ(line.rfind("sampler,nfe_budget,steps,nfe_used,w2,seconds,error", 0), 0u) << line;
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 10);
  std::ifstream svg(dir + "/plot.svg");
  std::stringstream ss;
  ss << svg.rdbuf();
  EXPECT_EQ(ss.str().rfind("<svg", 0), 0u);
  EXPECT_NE(ss.str().find("polyline"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir + "/table.md"));
}

TEST(CompareCli, PerSamplerArgsReachTheirSampler) {
  // AMED needs its coefficients and DDIM takes eta: --sampler-args NAME:k=v gives each its own.
  std::string dir = tmp("compare_args");
  fs::remove_all(dir);
  Result r =
      run("compare --model builtin:gaussian:shape=2,mean=0.5,std=0.5 --samplers amed,ddim --nfe 5 --num 100 "
          "--metric w2 --sampler-args amed:r=0.5,afs=true --sampler-args ddim:eta=1 --out-dir " +
          dir + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  ASSERT_EQ(doc["cells"].size(), 2u);
  for (const auto& c : doc["cells"]) {
    EXPECT_FALSE(c.contains("error") && !c["error"].is_null() && c["error"] != "") << c.dump();
    EXPECT_EQ(c["nfe_used"], 5) << c.dump();  // amed with afs, its default --final none: 2N − 1 = 5 for N = 3
  }
  expect_refused("compare --model builtin:gaussian --samplers euler --nfe 5 --sampler-args ddim:eta=1 --out-dir " + dir,
                 "not in --samplers");
  expect_refused("compare --model builtin:gaussian --samplers ddim --nfe 5 --sampler-args ddim:etaa=1 --out-dir " + dir,
                 "unknown sampler arg 'etaa'");
  expect_refused("compare --model builtin:gaussian --samplers ddim --nfe 5 --sampler-args eta=1 --out-dir " + dir,
                 "must be NAME:k=v");
}

TEST(CompareCli, ImageModelWritesAGridPerCellAndOdeError) {
  std::string dir = tmp("compare_gmm");
  fs::remove_all(dir);
  Result r =
      run("compare --model builtin:gmm:shape=1x4x4,k=3 --samplers euler,heun --nfe 3,7 --num 8 --metric ode-error "
          "--reference-steps 100 --out-dir " +
          dir);
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* s : {"euler", "heun"})
    for (int n : {3, 7}) EXPECT_TRUE(fs::exists(dir + "/grid_" + s + "_nfe" + std::to_string(n) + ".png")) << s << n;
  EXPECT_NE(r.out.find("| euler |"), std::string::npos) << r.out;
  expect_refused("compare --model builtin:gaussian --samplers heun,nosuch --nfe 3 --out-dir " + dir,
                 "unknown sampler 'nosuch'");
  expect_refused("compare --model builtin:gaussian --metric bogus --out-dir " + dir, "--metric 'bogus'");
  expect_refused("compare --model builtin:ring8 --metric w2 --out-dir " + dir, "needs --ref-data");
}
