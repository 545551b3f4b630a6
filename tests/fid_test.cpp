// The FD pipeline as a library (scoreflow/fid.h, scoreflow/sample_files.h): FD against an
// independently computed value, devices and resume that leave the answer unchanged, deferred
// NaN checks that still name the row, and sample files read as rows.
#include "scoreflow/fid.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "scoreflow/error.h"
#include "scoreflow/jobs.h"
#include "scoreflow/npy.h"
#include "scoreflow/registry.h"
#include "scoreflow/sample_files.h"
#include "scoreflow/sigmas.h"
#include "support/jobs_test_util.h"
#include "tests/support/error_text.h"

namespace fs = std::filesystem;
using namespace scoreflow;

namespace {

std::string scratch() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string dir = ::testing::TempDir() + "/scoreflow_fid/" + info->test_suite_name() + "." + info->name();
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

using scoreflow::testing_support::error_of;

const jobs::FeatureNetworks& cpu_identity() {
  static const jobs::FeatureNetworks fx("none", {torch::kCPU});
  return fx;
}

}  // namespace

TEST(Fid, TwoDimensionalFdEqualsTheClosedForm) {
  // Rows and reference statistics as plain numbers; the expected FD by hand: for 2x2 PSD S1, S2,
  // the eigenvalues of S1 S2 are those of S1^1/2 S2 S1^1/2, so tr (S1^1/2 S2 S1^1/2)^1/2 =
  // sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)).
  const double x[6][2] = {{0.5, 1.0}, {-1.0, 0.25}, {2.0, -0.5}, {0.0, 0.75}, {1.5, 1.5}, {-0.25, -1.0}};
  const double mu2[2] = {0.2, -0.1}, s2[2][2] = {{1.3, 0.4}, {0.4, 0.9}};
  double m[2] = {0, 0}, s1[2][2] = {{0, 0}, {0, 0}};
  for (const auto& r : x)
    for (int i = 0; i < 2; ++i) m[i] += r[i] / 6;
  for (const auto& r : x)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) s1[i][j] += (r[i] - m[i]) * (r[j] - m[j]) / 5;
  double tr12 = 0;
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 2; ++k) tr12 += s1[i][k] * s2[k][i];
  const double det1 = s1[0][0] * s1[1][1] - s1[0][1] * s1[1][0], det2 = s2[0][0] * s2[1][1] - s2[0][1] * s2[1][0];
  const double expected = (m[0] - mu2[0]) * (m[0] - mu2[0]) + (m[1] - mu2[1]) * (m[1] - mu2[1]) + s1[0][0] + s1[1][1] +
                          s2[0][0] + s2[1][1] - 2 * std::sqrt(tr12 + 2 * std::sqrt(det1 * det2));

  const std::string dir = scratch();
  const std::string stats = dir + "/ref.npz";
  eval::save_feature_stats(stats, torch::tensor({mu2[0], mu2[1]}, torch::kFloat64),
                           torch::tensor({s2[0][0], s2[0][1], s2[1][0], s2[1][1]}, torch::kFloat64).reshape({2, 2}));
  const torch::Tensor rows = torch::from_blob(const_cast<double*>(&x[0][0]), {6, 2}, torch::kFloat64).clone();
  jobs::FidOptions options;
  options.batch = 4;  // two batches, the second short
  const jobs::FidReport report =
      jobs::fid_report(cpu_identity(), jobs::fid_reference_from_stats(stats), rows, -1, 1, options);
  ASSERT_TRUE(report.fd.has_value());
  EXPECT_NEAR(*report.fd, expected, 1e-12);
  EXPECT_EQ(report.sample_count, 6);
  EXPECT_EQ(report.reference_count, 0);
  EXPECT_EQ(report.feature_dim, 2);
  EXPECT_FALSE(report.kid.has_value());
  EXPECT_FALSE(report.sliced_w2_squared.has_value()) << "sliced W2 needs reference rows, not statistics";
  EXPECT_NEAR(report.mu[0].item<double>(), m[0], 1e-15);
  EXPECT_NEAR(report.sigma[0][1].item<double>(), s1[0][1], 1e-15);
  const nlohmann::json doc = report.to_json();
  EXPECT_EQ(doc["fd"].get<double>(), *report.fd);
  EXPECT_EQ(doc["reference"], stats);
  EXPECT_EQ(doc["features"], "none");
  EXPECT_FALSE(doc.contains("kid"));

  // Identical rows on both sides: FD 0, KID near 0, sliced W2 0; no samples: the reference's stats.
  options.kid = true;
  options.kid_options.subsets = 3;
  const jobs::FidReference same = jobs::fid_reference_from_rows(cpu_identity(), rows, -1, 1, "rows", options);
  const jobs::FidReport zero = jobs::fid_report(cpu_identity(), same, rows, -1, 1, options);
  EXPECT_NEAR(*zero.fd, 0.0, 1e-12);
  EXPECT_EQ(zero.kid_options.subset_size, 6) << "capped at the set sizes";
  EXPECT_NEAR(*zero.sliced_w2_squared, 0.0, 1e-12);
  const jobs::FidReport ref_only = jobs::fid_report(cpu_identity(), same, torch::Tensor(), -1, 1, options);
  EXPECT_FALSE(ref_only.fd.has_value());
  EXPECT_TRUE(torch::allclose(ref_only.sigma, same.sigma));
  EXPECT_EQ(ref_only.notes.size(), 0u);
}

TEST(Fid, TwoCpuWorkersEqualOne) {
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({41, 3}) * 2 + 1, y = torch::randn({37, 3});
  const jobs::FeatureNetworks two("none", {torch::kCPU, torch::kCPU});
  jobs::FidOptions options;
  options.batch = 8;
  options.kid = true;
  options.kid_options.subsets = 4;
  options.kid_options.subset_size = 10;
  const jobs::FidReport a = jobs::fid_report(
      cpu_identity(), jobs::fid_reference_from_rows(cpu_identity(), y, -1, 1, "y", options), x, -1, 1, options);
  const jobs::FidReport b =
      jobs::fid_report(two, jobs::fid_reference_from_rows(two, y, -1, 1, "y", options), x, -1, 1, options);
  EXPECT_NEAR(*b.fd, *a.fd, 1e-9 * *a.fd);
  EXPECT_EQ(b.kid->mean, a.kid->mean) << "kept rows come back in row order";
  EXPECT_EQ(*b.sliced_w2_squared, *a.sliced_w2_squared);
  const eval::FeatureSet split = jobs::extract_features(two, x, -1, 1, 8, true);
  EXPECT_TRUE(torch::equal(split.rows, x.to(torch::kFloat64)));
  EXPECT_EQ(split.moments.count(), 41);
}

TEST(Fid, ResumedSamplesGiveTheUninterruptedFd) {
  const std::string dir = scratch();
  auto model = open_model("builtin:gmm:shape=3,k=2");
  auto sampler = make_sampler("euler");
  SampleJob job;
  job.sigmas = make_sigmas("karras", 5, model->metadata().schedule, KeyValueArgs(""));
  for (uint64_t s = 0; s < 12; ++s) job.seeds.push_back(s);
  job.batch = 3;
  const torch::Tensor ref_rows = torch::randn({20, 3});
  jobs::FidOptions options;
  options.batch = 3;
  const jobs::FidReference ref = jobs::fid_reference_from_rows(cpu_identity(), ref_rows, -1, 1, "ref", options);
  const double whole =
      *jobs::fid_report(cpu_identity(), ref, jobs::run_chunked(*sampler, model, job).result.samples, -1, 1, options).fd;

  const std::string parts = jobs::chunk_folder(dir + "/report.json");
  const io::Settings settings = jobs::model_settings(*model);
  // killed after two chunks
  testing_jobs::run_killed_after(*sampler, model, job, parts, settings, 6);
  io::ChunkStore store(parts, settings, false, "the output");
  jobs::ChunkOptions o;
  o.store = &store;
  const jobs::ChunkedResult resumed = jobs::run_chunked(*sampler, model, job, o);
  EXPECT_EQ(resumed.resumed, 6);
  EXPECT_EQ(*jobs::fid_report(cpu_identity(), ref, resumed.result.samples, -1, 1, options).fd, whole);
}

TEST(Fid, DeferredNanChecksNameTheRowAndDimensionsMustAgree) {
  torch::Tensor x = torch::randn({10, 2});
  x[7][1] = std::nan("");
  jobs::FidOptions options;
  options.batch = 3;
  const std::string dir = scratch();
  const std::string stats = dir + "/ref.npz";
  eval::save_feature_stats(stats, torch::zeros({3}), torch::eye(3));
  const jobs::FidReference ref = jobs::fid_reference_from_stats(stats);
  EXPECT_NE(error_of([&] { jobs::fid_report(cpu_identity(), ref, x, -1, 1, options); }).find("NaN or Inf (sample 7)"),
            std::string::npos);
  const jobs::FeatureNetworks two("none", {torch::kCPU, torch::kCPU});
  EXPECT_NE(error_of([&] { jobs::fid_report(two, ref, x, -1, 1, options); }).find("(sample 7)"), std::string::npos)
      << "the second worker's rows are numbered in the whole set";
  const std::string dim = error_of([&] {
    jobs::fid_report(cpu_identity(), ref, torch::randn({10, 2}), -1, 1, options);
  });
  EXPECT_NE(dim.find("reference statistics " + stats + " have dimension 3 but the samples have dimension 2"),
            std::string::npos)
      << dim;
  EXPECT_NE(error_of([&] {
              jobs::fid_report(cpu_identity(), ref, torch::randn({1, 3}), -1, 1, options);
            }).find("at least 2 samples"),
            std::string::npos);
  options.kid = true;  // statistics hold no rows to draw KID subsets from
  const std::string kid = error_of([&] {
    jobs::fid_report(cpu_identity(), ref, torch::randn({10, 3}), -1, 1, options);
  });
  EXPECT_NE(kid.find("KID needs the reference features"), std::string::npos) << kid;
  const std::string one = error_of([&] {
    jobs::fid_reference_from_rows(cpu_identity(), torch::randn({1, 3}), -1, 1, "r", options);
  });
  EXPECT_NE(one.find("at least 2 reference items"), std::string::npos) << one;
}

TEST(SampleFiles, FloatPointsAsTheyAreAndUint8ImagesScaled) {
  const std::string dir = scratch();
  const torch::Tensor points = torch::randn({5, 2});
  io::write_npz(dir + "/points.npz", {{"samples", io::from_tensor(points)}});
  EXPECT_TRUE(torch::equal(io::load_sample_rows(dir + "/points.npz", -1, 1), points));
  EXPECT_TRUE(torch::equal(io::load_sample_rows(dir + "/points.npz", -1, 1, 3), points.narrow(0, 0, 3)));
  const torch::Tensor images = torch::tensor({0, 255, 0, 255, 255, 0, 255, 0}, torch::kUInt8).reshape({2, 2, 2, 1});
  io::write_npz(dir + "/images.npz", {{"images", io::from_tensor(images)}});
  const torch::Tensor rows = io::load_sample_rows(dir + "/images.npz", 0, 1);
  ASSERT_EQ(rows.sizes(), (std::vector<int64_t>{2, 1, 2, 2}));
  EXPECT_EQ(rows.max().item<float>(), 1.0f);
  EXPECT_EQ(rows.min().item<float>(), 0.0f);
  io::write_npy(dir + "/flat.npy", io::from_tensor(torch::randn({4})));
  EXPECT_NE(error_of([&] { io::load_sample_rows(dir + "/flat.npy", -1, 1); }).find("expected samples [N, ...]"),
            std::string::npos);
}
