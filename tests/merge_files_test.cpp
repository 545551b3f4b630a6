// `scoreflow merge` as a library call (scoreflow/jobs/merge.h): the summary, the FD against the
// reference feature-statistics shards were run with, and the refusals before anything is written.
#include <gtest/gtest.h>

#include <filesystem>

#include "scoreflow/error.h"
#include "scoreflow/fingerprint.h"
#include "scoreflow/jobs.h"
#include "scoreflow/jobs/merge.h"
#include "scoreflow/metrics.h"
#include "scoreflow/npy.h"
#include "support/io_test_util.h"
#include "support/jobs_test_util.h"

using namespace scoreflow;
using scoreflow::testing_jobs::expect_field_error;

namespace {

constexpr int64_t kItems = 120, kDim = 4;

class MergeFilesTest : public testing_io::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    torch::manual_seed(5);
    x_ = torch::randn({kItems, kDim}, torch::kFloat64);
    // Reference statistics: the data's own covariance, the mean moved by 1 in every coordinate, so
    // that FD = |Δμ|² = kDim.
    const torch::Tensor xc = x_ - x_.mean(0);
    ref_ = path("ref.npz");
    io::write_npz(ref_, {{"mu", io::from_tensor(x_.mean(0) + 1.0)},
                         {"sigma", io::from_tensor(xc.t().matmul(xc) / double(kItems - 1))}});
  }
  /// Three feature-moment shards of x_ (as eval fid --shard writes them), recording `ref`; the
  /// paths from shard 2 down.
  std::vector<std::string> fid_shards(const std::string& recorded_ref) {
    std::vector<std::string> paths;
    for (int64_t i = 2; i >= 0; --i) {
      jobs::Shard shard;
      shard.index = i;
      shard.count = 3;
      const auto [begin, end] = jobs::shard_range(kItems, 10, shard);
      eval::MomentAccumulator m;
      m.add(x_.narrow(0, begin, end - begin));
      nlohmann::json record = jobs::shard_record("fid", shard, {{"features", "none"}}, begin, end, kItems);
      record["ref"] = {{"path", recorded_ref}, {"hash", io::hash_file(recorded_ref)}};
      paths.push_back(jobs::shard_path(path("stats.npz"), shard));
      io::write_npz(paths.back(), {{"count", io::from_tensor(torch::tensor({m.count()}, torch::kLong))},
                                   {"shift", io::from_tensor(m.shift())},
                                   {"sum", io::from_tensor(m.sum())},
                                   {"outer", io::from_tensor(m.outer())},
                                   {jobs::kShardKey, jobs::record_array(record)}});
    }
    return paths;
  }
  torch::Tensor x_;
  std::string ref_;
};

}  // namespace

TEST_F(MergeFilesTest, SummaryAndTheFdAgainstTheShardsReference) {
  const std::vector<std::string> paths = fid_shards(ref_);
  const jobs::MergeResult r = jobs::merge_files(paths, path("merged.npz"));
  EXPECT_EQ(r.stale_ref, "");
  EXPECT_EQ(r.summary["kind"], "fid");
  EXPECT_EQ(r.summary["num_shards"], 3);
  EXPECT_EQ(r.summary["total"], kItems);
  EXPECT_EQ(r.summary["count"], kItems);
  EXPECT_EQ(r.summary["out"], path("merged.npz"));
  EXPECT_EQ(r.summary["inputs"], nlohmann::json({paths[2], paths[1], paths[0]}));  // shard order
  EXPECT_EQ(r.summary["reference"], ref_);
  EXPECT_NEAR(r.summary["fd"].get<double>(), double(kDim), 1e-9);
  EXPECT_TRUE(std::filesystem::exists(path("merged.npz")));
}

TEST_F(MergeFilesTest, AChangedReferenceGivesNoFdUnlessOneIsGiven) {
  const std::vector<std::string> paths = fid_shards(ref_);
  // The recorded reference changes after the shards ran: no FD, its path reported.
  const torch::Tensor xc = x_ - x_.mean(0);
  io::write_npz(
      ref_, {{"mu", io::from_tensor(x_.mean(0))}, {"sigma", io::from_tensor(xc.t().matmul(xc) / double(kItems - 1))}});
  const jobs::MergeResult stale = jobs::merge_files(paths, path("merged.npz"));
  EXPECT_EQ(stale.stale_ref, ref_);
  EXPECT_FALSE(stale.summary.contains("fd"));
  // Given explicitly, it is used: now the data's own statistics, FD 0.
  const jobs::MergeResult given = jobs::merge_files(paths, path("merged2.npz"), ref_);
  EXPECT_EQ(given.stale_ref, "");
  EXPECT_NEAR(given.summary["fd"].get<double>(), 0.0, 1e-9);
}

TEST_F(MergeFilesTest, RefusesBeforeWriting) {
  const std::vector<std::string> paths = fid_shards(ref_);
  const std::string out = path("never.npz");
  EXPECT_THROW(jobs::merge_files({}, out), Error);
  try {
    jobs::merge_files(paths, paths[1]);
    ADD_FAILURE() << "an input as the output was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is also an input"), std::string::npos) << e.what();
  }
  // --ref is for feature statistics only: a samples shard set is refused naming the field.
  std::vector<std::string> samples;
  for (int64_t i = 0; i < 2; ++i) {
    jobs::Shard shard;
    shard.index = i;
    shard.count = 2;
    samples.push_back(jobs::shard_path(path("s.npz"), shard));
    io::write_npz(
        samples.back(),
        {{jobs::kShardKey, jobs::record_array(jobs::shard_record("samples", shard, {}, i * 2, i * 2 + 2, 4))}});
  }
  expect_field_error([&] { jobs::merge_files(samples, out, ref_); }, "ref",
                     "ref is for eval fid shards; these are samples shards");
  EXPECT_FALSE(std::filesystem::exists(out));
}
