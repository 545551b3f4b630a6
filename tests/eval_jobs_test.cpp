// The eval jobs as library calls (scoreflow/jobs/eval.h), in process: the values the eval CLI tests
// assert, a run that died before its report resumes its finished chunks (one of them lost) to the
// report of an uninterrupted run byte for byte, and refusals naming the fields (spelled as the
// CLI's flags by cli/error_flags.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/error_flags.h"
#include "scoreflow/error.h"
#include "scoreflow/jobs/eval.h"
#include "scoreflow/model.h"
#include "scoreflow/npy.h"
#include "scoreflow/registry.h"
#include "scoreflow/sample_files.h"
#include "support/io_test_util.h"
#include "support/jobs_test_util.h"

namespace fs = std::filesystem;
using namespace scoreflow;
using testing_io::read_bytes;

namespace {

class EvalJobs : public testing_io::PointsDirTest {};

using testing_jobs::error_of;
using testing_jobs::field_names;

/// A report as written, without its wall-clock fields (the only thing two identical runs differ in).
std::string without_times(const std::string& path) {
  const std::vector<uint8_t> bytes = read_bytes(path);
  auto doc = nlohmann::json::parse(std::string(bytes.begin(), bytes.end()));
  doc.erase("wall_seconds");
  doc.erase("feature_images_per_second");
  return doc.dump(2);
}

std::vector<fs::path> chunks_in(const std::string& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".npy") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

/// A hook that runs once the job's settings are checked and before its chunk store opens: it puts
/// a folder where the report goes, so that the job dies writing its report with every chunk kept.
void block_report(const std::string& out) { fs::create_directories(out); }

}  // namespace

TEST_F(EvalJobs, ScoreMatchingHoldsTheIdentityAndResumesToTheSameReport) {
  torch::manual_seed(0);
  auto model = open_model("builtin:gaussian:shape=2,std=0.6");
  jobs::ScoreMatchingJob job;
  job.data = points("points.npy", torch::randn({30, 2}) * 0.8 + 0.3);
  job.sigmas = {0.1, 0.5, 2, 8};
  job.num_images = 64;
  job.seed = 3;
  job.output.out = path("whole.json");
  const auto whole = jobs::score_matching_job(model, job);
  ASSERT_EQ(whole.rows.size(), 4u);
  EXPECT_EQ(whole.resumed, 0);
  for (const auto& row : whole.report["rows"]) {
    EXPECT_LT(std::abs(row["identity_residual"].get<double>()), 4 * row["identity_residual_se"].get<double>() + 1e-9)
        << row.dump();
    EXPECT_NEAR(row["dsm_per_dim"].get<double>() * 2, row["dsm"].get<double>(), 1e-9);
  }
  EXPECT_FALSE(fs::exists(path("whole.json.parts")));

  // Dies writing its report: every level is kept; lose one, and the resumed run redoes only that.
  jobs::ScoreMatchingJob killed = job;
  killed.output.out = path("again.json");
  killed.conditions = [&](const Model&, int64_t) {
    block_report(killed.output.out);
    return ItemConditions{};
  };
  EXPECT_THROW(jobs::score_matching_job(model, killed), Error);
  const auto kept = chunks_in(path("again.json.parts"));
  ASSERT_EQ(kept.size(), 4u);
  fs::remove(kept[1]);
  fs::remove_all(killed.output.out);
  job.output.out = killed.output.out;
  // Other settings are refused naming the setting, and leave the chunks alone.
  jobs::ScoreMatchingJob other = job;
  other.seed = 4;
  const Error refused = error_of([&] { jobs::score_matching_job(model, other); });
  EXPECT_NE(std::string(refused.what()).find("seed was '3', now '4'"), std::string::npos) << refused.what();
  EXPECT_EQ(chunks_in(path("again.json.parts")).size(), 3u);
  const auto resumed = jobs::score_matching_job(model, job);
  EXPECT_EQ(resumed.resumed, 3);
  EXPECT_EQ(without_times(path("again.json")), without_times(path("whole.json")));
  EXPECT_FALSE(fs::exists(path("again.json.parts")));
}

TEST_F(EvalJobs, WboundShowsTheTrueW2ForGaussiansAndResumesToTheSameReport) {
  auto model = open_model("builtin:gaussian:shape=2,mean=0.4,std=1.5");
  jobs::WBoundJob job;
  job.data = "builtin:gaussian:shape=2";
  job.timesteps = 30;
  job.options.num_images = 500;
  job.options.lipschitz_points = 2;
  job.options.iterations = 5;
  job.options.ode_samples = 200;
  const auto r = jobs::wbound_job(model, job);
  const double w2 = std::sqrt(2 * 0.16 + 2 * 0.25);
  EXPECT_NEAR(r.report["true_w2"].get<double>(), w2, 1e-9);
  EXPECT_GE(r.bound.kwon_bound, w2);
  EXPECT_NEAR(r.bound.su_coupling, w2, 0.15 * w2);
  EXPECT_EQ(r.bound.rows.size(), 30u);

  jobs::WBoundJob small = job;
  small.timesteps = 12;
  small.sigmas = {0.2, 1, 5};
  small.options.num_images = 32;
  small.options.lipschitz_points = 4;
  small.options.iterations = 8;
  small.options.ode_samples = 16;
  small.options.ode_steps = 12;
  small.output.out = path("whole.json");
  ASSERT_EQ(jobs::wbound_job(model, small).resumed, 0);
  jobs::WBoundJob killed = small;
  killed.output.out = path("again.json");
  killed.conditions = [&](const Model&, int64_t) {
    block_report(killed.output.out);
    return ItemConditions{};
  };
  EXPECT_THROW(jobs::wbound_job(model, killed), Error);
  auto kept = chunks_in(path("again.json.parts"));
  ASSERT_GE(kept.size(), 2u);
  fs::remove(kept.front());
  fs::remove_all(killed.output.out);
  small.output.out = killed.output.out;
  const auto resumed = jobs::wbound_job(model, small);
  EXPECT_EQ(resumed.resumed, static_cast<int64_t>(kept.size()) - 1);
  EXPECT_EQ(without_times(path("again.json")), without_times(path("whole.json")));
  EXPECT_FALSE(fs::exists(path("again.json.parts")));
}

TEST_F(EvalJobs, FidOfIdenticalDataIsZeroAndSavesTheStatistics) {
  torch::manual_seed(1);
  jobs::FidJob job;
  job.features = "none";
  job.ref_data = points("ref.npy", torch::randn({40, 2}));
  job.samples_path = job.ref_data;
  job.save_stats = path("stats.npz");
  const auto r = jobs::fid_job(job);
  ASSERT_TRUE(r.metrics.fd.has_value());
  EXPECT_NEAR(*r.metrics.fd, 0.0, 1e-9);
  EXPECT_TRUE(r.identity);
  EXPECT_EQ(r.report["sample_count"], 40);
  EXPECT_EQ(r.report["outputs"]["stats"], job.save_stats);
  // The saved statistics are the rows' mean and unbiased covariance.
  const torch::Tensor rows = io::load_sample_rows(job.ref_data, -1, 1).to(torch::kFloat64).reshape({40, 2});
  const auto [mu, sigma] = eval::load_feature_stats(job.save_stats);
  EXPECT_TRUE(torch::allclose(mu, rows.mean(0), 1e-6, 1e-9));
  const torch::Tensor centred = rows - rows.mean(0);
  EXPECT_TRUE(torch::allclose(sigma, centred.t().mm(centred) / 39, 1e-6, 1e-9));
  EXPECT_NEAR(r.report["sliced_w2_squared"].get<double>(), 0.0, 1e-12);
  // Against statistics with the mean moved by (0.5, 0): FD = |Δμ|² = 0.25.
  jobs::FidJob shifted = job;
  shifted.ref_data.clear();
  shifted.ref = path("shifted.npz");
  shifted.save_stats.clear();
  eval::save_feature_stats(shifted.ref, mu + torch::tensor({0.5, 0.0}, torch::kFloat64), sigma);
  EXPECT_NEAR(*jobs::fid_job(shifted).metrics.fd, 0.25, 1e-6);
}

TEST_F(EvalJobs, FidOfAModelsSamplesResumesToTheSameReport) {
  torch::manual_seed(2);
  auto model = open_model("builtin:gaussian:shape=1x4x4,std=0.8");
  std::shared_ptr<const Sampler> heun = make_sampler("heun");
  jobs::GridChoice grid;
  grid.steps = 6;
  auto samples = [&](const jobs::Shard* shard) {
    EXPECT_EQ(shard, nullptr);
    jobs::FidSampling f;
    f.models = {model};
    f.sampler = heun;
    f.final = FinalStep::Zero;
    f.job.sigmas = jobs::choose_grid(grid, *model, *heun, "", f.final).sigmas;
    for (uint64_t s = 0; s < 30; ++s) f.job.seeds.push_back(s);
    f.job.batch = 6;
    f.total = 30;
    f.decoder = std::make_shared<ImageDecoder>(ImageDecoder::for_model(model));
    f.seeds = "0-29";
    return f;
  };
  jobs::FidJob job;
  job.features = "none";
  job.ref_data = points("ref.npy", torch::randn({64, 16}) * 0.7);
  job.fid.batch = 6;
  job.model_samples = samples;
  job.output.out = path("whole.json");
  const auto whole = jobs::fid_job(job);
  ASSERT_TRUE(whole.metrics.fd.has_value());
  EXPECT_EQ(whole.report["sample_count"], 30);
  EXPECT_EQ(whole.report["sampling"]["nfe"], heun->nfe_for(6, FinalStep::Zero));
  EXPECT_FALSE(fs::exists(path("whole.json.parts")));

  jobs::FidJob killed = job;
  killed.output.out = path("again.json");
  killed.model_samples = [&](const jobs::Shard* shard) {
    block_report(killed.output.out);
    return samples(shard);
  };
  EXPECT_THROW(jobs::fid_job(killed), Error);
  const auto kept = chunks_in(path("again.json.parts"));
  ASSERT_EQ(kept.size(), 5u);  // 30 seeds in batches of 6
  fs::remove(kept[2]);
  fs::remove_all(killed.output.out);
  job.output.out = killed.output.out;
  jobs::fid_job(job);
  EXPECT_EQ(without_times(path("again.json")), without_times(path("whole.json")));
  EXPECT_FALSE(fs::exists(path("again.json.parts")));
}

TEST_F(EvalJobs, FidShardsOfTheSamplesMergeToTheUnshardedStatistics) {
  torch::manual_seed(3);
  jobs::FidJob job;
  job.features = "none";
  job.ref = path("ref.npz");
  eval::save_feature_stats(job.ref, torch::zeros({3}, torch::kFloat64), torch::eye(3, torch::kFloat64));
  job.samples_path = points("samples.npy", torch::randn({50, 3}));
  job.fid.batch = 8;  // 7 batches: shard 0 takes 3 (24 rows), shard 1 takes 4
  job.save_stats = path("whole.npz");
  jobs::fid_job(job);
  std::vector<std::string> parts;
  for (const char* s : {"0/2", "1/2"}) {
    jobs::FidJob shard = job;
    shard.save_stats = path("part.npz");
    shard.shard = jobs::parse_shard(s);
    const auto r = jobs::fid_job(shard);
    EXPECT_EQ(r.count, shard.shard.index == 0 ? 24 : 26);
    EXPECT_EQ(r.report["rows"], shard.shard.index == 0 ? nlohmann::json({0, 24}) : nlohmann::json({24, 50}));
    parts.push_back(r.partial_stats);
  }
  EXPECT_EQ(parts[0], path("part.shard-0-of-2.npz"));
  jobs::merge_shards(jobs::read_shard_set(parts), path("merged.npz"));
  const auto [mu, sigma] = eval::load_feature_stats(path("merged.npz"));
  const auto [mu1, sigma1] = eval::load_feature_stats(path("whole.npz"));
  EXPECT_TRUE(torch::allclose(mu, mu1, 1e-12, 1e-12));
  EXPECT_TRUE(torch::allclose(sigma, sigma1, 1e-12, 1e-12));
}

TEST_F(EvalJobs, RefusalsNameTheFieldsAndReadAsTheFlagsOfTheCli) {
  const std::string data = points("points.npy", torch::randn({10, 2}));
  jobs::FidJob ok;
  ok.features = "none";
  ok.ref_data = data;
  ok.samples_path = data;
  auto refusal = [&](const jobs::FidJob& bad) { return error_of([&] { jobs::fid_job(bad); }); };

  jobs::FidJob bad = ok;
  bad.ref = path("stats.npz");
  Error e = refusal(bad);
  EXPECT_EQ(field_names(e), (std::vector<std::string>{"ref", "ref_data"}));
  EXPECT_EQ(cli::flag_message(e), "give --ref (statistics .npz) or --ref-data (a dataset), not both");
  bad = ok;
  bad.model_samples = [](const jobs::Shard*) { return jobs::FidSampling{}; };
  EXPECT_EQ(cli::flag_message(refusal(bad)), "give --samples or --model, not both");
  bad = ok;
  bad.ref_data.clear();
  EXPECT_EQ(cli::flag_message(refusal(bad)), "give the reference: --ref stats.npz or --ref-data DATASET");
  bad = ok;
  bad.samples_path.clear();
  EXPECT_EQ(cli::flag_message(refusal(bad)),
            "nothing to compare: give --samples or --model (or --save-stats to only compute reference statistics)");
  bad = ok;
  bad.ref_data.clear();
  bad.ref = path("stats.npz");
  bad.fid.kid = true;
  EXPECT_EQ(cli::flag_message(refusal(bad)),
            "--kid needs the reference features: use --ref-data, not --ref statistics");
  bad = ok;
  bad.data_range = "1,-1";
  EXPECT_EQ(cli::flag_message(refusal(bad)), "--data-range must be lo,hi with hi > lo, got '1,-1'");
  bad.data_range = "x,1";
  EXPECT_EQ(cli::flag_message(refusal(bad)), "--data-range: 'x' is not a number");
  bad = ok;
  bad.save_stats = path("");
  EXPECT_EQ(refusal(bad).field(), "save_stats");
  bad = ok;
  bad.shard = jobs::parse_shard("0/2");
  e = refusal(bad);
  EXPECT_EQ(field_names(e), (std::vector<std::string>{"shard", "save_stats"}));
  bad.save_stats = path("stats.npz");
  bad.fid.kid = true;
  EXPECT_EQ(cli::flag_message(refusal(bad)), "--kid needs every feature row in one process; it cannot be sharded");

  auto model = open_model("builtin:gaussian:shape=2");
  jobs::ScoreMatchingJob sm;
  sm.data = data;
  sm.sigmas = {0.5, -1};
  sm.output.out = path("sm.json");
  e = error_of([&] { jobs::score_matching_job(model, sm); });
  EXPECT_EQ(cli::flag_message(e), "--sigmas: noise levels must be > 0, got -1");
  jobs::WBoundJob wb;
  wb.data = data;
  wb.options.iterations = 0;
  wb.output.out = path("wb.json");
  EXPECT_EQ(error_of([&] { jobs::wbound_job(model, wb); }).field(), "iterations");
  wb.options.iterations = 5;
  wb.output.out = path("");  // the folder itself
  wb.output.out_field = "--out";
  EXPECT_EQ(std::string(error_of([&] { jobs::wbound_job(model, wb); }).what()).rfind("--out '", 0), 0u);
  EXPECT_FALSE(fs::exists(path("sm.json")) || fs::exists(path("sm.json.parts")) || fs::exists(path("wb.json")));
}
