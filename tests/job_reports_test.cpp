// The job layer's option checks and reports that the commands print (issue #16: cli/ only reads
// flags), in process: each refusal names its field, and through the CLI's field -> flag table reads
// as the command's `error:` line did; each report has the fields and text the command printed.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "cli/error_flags.h"
#include "scoreflow/amed_job.h"
#include "scoreflow/bench.h"
#include "scoreflow/builtin.h"
#include "scoreflow/compare.h"
#include "scoreflow/error.h"
#include "scoreflow/jobs/analytic.h"
#include "scoreflow/jobs/sample.h"
#include "scoreflow/registry.h"
#include "scoreflow/search_job.h"
#include "scoreflow/sigmas.h"
#include "tests/support/io_test_util.h"

using namespace scoreflow;

namespace {

/// `call` throws an Error naming `field` first whose message, with the CLI's flags for the fields,
/// is exactly `cli_message`.
void expect_cli_error(const std::function<void()>& call, const std::string& field, const std::string& cli_message) {
  try {
    call();
    ADD_FAILURE() << "accepted; expected: " << cli_message;
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), field) << e.what();
    EXPECT_EQ(cli::flag_message(e), cli_message);
  }
}

/// A dataset that is only described (the reports read nothing else).
class NamedDataset : public io::Dataset {
 public:
  int64_t size() const override { return 0; }
  std::vector<int64_t> shape() const override { return {1, 2, 2}; }
  torch::Tensor batch(int64_t, int64_t) const override { return {}; }
  std::string describe() const override { return "npy data.npy (8 items 1x2x2)"; }
};

}  // namespace

TEST(BenchOptionsValidate, RefusesRepeatOrIterationsBelowOneNamingTheField) {
  jobs::BenchOptions o;
  EXPECT_NO_THROW(o.validate());
  o.repeat = 0;
  expect_cli_error([&] { o.validate(); }, "repeat", "--repeat must be >= 1, got 0");
  o.repeat = 1;
  o.iterations = -3;
  expect_cli_error([&] { o.validate(); }, "iterations", "--iterations must be >= 1, got -3");
}

TEST(BenchOptionsValidate, BatchListsAreIntegersOfAtLeastOne) {
  EXPECT_EQ(jobs::parse_batch_sizes("1,8,64"), (std::vector<int>{1, 8, 64}));
  EXPECT_EQ(jobs::parse_batch_sizes("4,,2"), (std::vector<int>{4, 2}));
  for (const std::string bad : {"4,0", "", ",", "x", "3x", "2.5", "-1"})
    expect_cli_error([&] { jobs::parse_batch_sizes(bad); }, "batch",
                     "--batch must be a list of integers >= 1, got '" + bad + "'");
}

TEST(BenchOptionsValidate, CasesAreSamplerMajorWithSeedsZeroToBatch) {
  const std::vector<jobs::BenchCase> cases = jobs::bench_cases("euler,heun", "", "", {1, 3}, 4);
  ASSERT_EQ(cases.size(), 4u);
  EXPECT_EQ(cases[0].sampler->name(), "euler");
  EXPECT_EQ(cases[1].sampler->name(), "euler");
  EXPECT_EQ(cases[2].sampler->name(), "heun");
  EXPECT_EQ(cases[1].job.seeds, (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_EQ(cases[2].job.seeds, (std::vector<uint64_t>{0}));
  EXPECT_EQ(cases[3].final, FinalStep::Zero);
  EXPECT_EQ(jobs::bench_cases("heun", "", "none", {2}, 4)[0].final, FinalStep::None);
  expect_cli_error([] { jobs::bench_cases(",", "", "", {1}, 4); }, "sampler", "--sampler names no sampler");
  EXPECT_THROW(jobs::bench_cases("euler,heun", "", "", {1}, 0), Error);  // below either's least NFE
}

TEST(CompareOptionsParse, SamplerArgsNeedANamePart) {
  const auto args = jobs::parse_named_sampler_args({"ddim:eta=0.5", "amed:predictor=a.pt,afs=true"});
  EXPECT_EQ(args.at("ddim"), "eta=0.5");
  EXPECT_EQ(args.at("amed"), "predictor=a.pt,afs=true");
  for (const std::string bad : {"eta=1", ":eta=1"})
    expect_cli_error([&] { jobs::parse_named_sampler_args({bad}); }, "sampler_args",
                     "--sampler-args '" + bad + "' must be NAME:k=v,... (e.g. amed:predictor=amed.pt)");
}

TEST(CompareOptionsParse, BudgetsAreNonNegativeIntegers) {
  EXPECT_EQ(jobs::nfe_budgets({0, 3, 5}), (std::vector<int>{0, 3, 5}));
  expect_cli_error([] { jobs::nfe_budgets({3, 2.5}); }, "nfe", "--nfe values must be non-negative integers, got 2.5");
  expect_cli_error([] { jobs::nfe_budgets({-1}); }, "nfe", "--nfe values must be non-negative integers, got -1");
}

TEST(CompareReport, TextAndJsonListEveryCellAndTheFiles) {
  jobs::CompareOptions o;
  o.metric.metric = "w2";
  o.out_dir = "out";
  jobs::CompareResult r;
  r.label = "W2 to the exact distribution";
  r.table = "| sampler | 1 |\n|---|---|\n| euler | 0.5 |";
  r.table_path = "out/table.md", r.csv_path = "out/results.csv", r.plot_path = "p.svg";
  r.schedules = {"karras"};
  r.num_samples = 8;
  eval::SweepCell ok;
  ok.sampler = "euler", ok.nfe_budget = 1, ok.steps = 1, ok.nfe_used = 1, ok.metric = 0.5, ok.seconds = 2;
  eval::SweepCell refused;
  refused.sampler = "heun", refused.nfe_budget = 1, refused.error = "needs at least 2 NFE";
  r.cells = {ok, refused};
  r.finals = {FinalStep::Zero, FinalStep::None};
  EXPECT_EQ(jobs::compare_text(r, o),
            "W2 to the exact distribution\n\n| sampler | 1 |\n|---|---|\n| euler | 0.5 |\n"
            "table out/table.md, CSV out/results.csv, plot p.svg\n");
  r.grids = {"out/grid_euler_nfe1.png"};
  EXPECT_EQ(jobs::compare_text(r, o).substr(jobs::compare_text(r, o).find("\ntable ")),
            "\ntable out/table.md, CSV out/results.csv, plot p.svg, grids in out\n");
  const nlohmann::json j = jobs::to_json(r, o);
  EXPECT_EQ(j["command"], "compare");
  EXPECT_EQ(j["metric"], "w2");
  EXPECT_EQ(j["metric_label"], r.label);
  EXPECT_EQ(j["num_samples"], 8);
  EXPECT_EQ(j["schedule"], "karras");
  EXPECT_EQ(j["outputs"]["grids"], nlohmann::json({"out/grid_euler_nfe1.png"}));
  ASSERT_EQ(j["cells"].size(), 2u);
  EXPECT_EQ(j["cells"][0], nlohmann::json({{"sampler", "euler"},
                                           {"nfe_budget", 1},
                                           {"final", "zero"},
                                           {"steps", 1},
                                           {"nfe_used", 1},
                                           {"metric", 0.5},
                                           {"seconds", 2.0}}));
  EXPECT_EQ(
      j["cells"][1],
      nlohmann::json({{"sampler", "heun"}, {"nfe_budget", 1}, {"final", "none"}, {"error", "needs at least 2 NFE"}}));
}

class AmedJobCheck : public testing_io::TempDirTest {};

TEST_F(AmedJobCheck, RefusesRestartsValidationAndOutputsWithoutAModel) {
  jobs::AmedJobOptions o;
  o.out = path("amed.pt");
  o.out_field = "--out";
  EXPECT_NO_THROW(o.check());
  o.restarts = 0;
  expect_cli_error([&] { o.check(); }, "restarts", "--restarts must be >= 1, got 0");
  o.restarts = 1;
  o.validate = -2;
  expect_cli_error([&] { o.check(); }, "validate", "--validate must be >= 0, got -2");
  o.restarts = 2;
  o.validate = 0;
  expect_cli_error([&] { o.check(); }, "restarts",
                   "--restarts 2 keeps the run with the lowest end-to-end error, so it needs --validate N > 0");
  o.restarts = 1;
  o.log = dir_.string();  // a folder where a file is to be written
  expect_cli_error([&] { o.check(); }, "log",
                   "--log '" + dir_.string() + "': is a directory; give the path of the file to write");
}

TEST_F(AmedJobCheck, ReportsTheKeptRunAndEveryRestart) {
  jobs::AmedJobOptions o;
  o.steps = 3;
  o.afs = true;
  o.num_trajectories = 32;
  o.batch = 32;
  o.out = path("amed.pt");
  o.log = path("loss.csv");
  const jobs::AmedJobResult r = jobs::train_amed_job(make_builtin("builtin:gmm:shape=2"), o);
  const nlohmann::json j = jobs::to_json(r, o);
  EXPECT_EQ(j["command"], "train-amed");
  EXPECT_EQ(j["student"], "amed");
  EXPECT_EQ(j["teacher"], "heun");
  EXPECT_EQ(j["steps"], 3);
  EXPECT_EQ(j["final"], "none");
  EXPECT_EQ(j["nfe"], 5);  // 2 per step, one less with the analytical first step
  EXPECT_EQ(j["afs"], true);
  EXPECT_EQ(j["num_trajectories"], 32);
  EXPECT_EQ(j["out"], o.out);
  EXPECT_EQ(j["log"], o.log);
  EXPECT_EQ(j["table"], "");
  ASSERT_EQ(j["restarts"].size(), 1u);
  EXPECT_TRUE(j["validation_rms"].is_null());  // one run: no validation
  EXPECT_TRUE(j["restarts"][0]["validation_rms"].is_null());
  EXPECT_EQ(j["first_loss"], r.runs[0].first_loss);
  EXPECT_EQ(j["sigmas"].size(), 4u);

  jobs::write_amed_table(o.out, path("table.json"));
  EXPECT_TRUE(std::filesystem::is_regular_file(path("table.json")));
  expect_cli_error([&] { jobs::write_amed_table(o.out, dir_.string(), "--out"); }, "--out",
                   "--out '" + dir_.string() + "': is a directory; give the path of the file to write");
}

TEST(SearchReport, SummaryLineAndJsonOfEachMethod) {
  jobs::ScheduleSearchOptions o;
  o.out = "sched.json";
  jobs::ScheduleSearchResult r;
  r.file.sampler = "ipndm";
  r.file.nfe = 3;
  r.steps = 3;
  r.sigmas = {80, 1.5, 0};
  r.cost = 0.0123;
  r.details = {{"cost", 0.0123}, {"resumed_batches", 0}};
  EXPECT_EQ(jobs::search_summary(r, o), "ipndm NFE 3: sigmas 80.000000, 1.500000, 0.000000 (cost 0.0123)");
  const nlohmann::json j = jobs::to_json(r, o);
  EXPECT_EQ(j, nlohmann::json({{"command", "search-schedule"},
                               {"method", "gits"},
                               {"sampler", "ipndm"},
                               {"nfe", 3},
                               {"steps", 3},
                               {"sigmas", {80.0, 1.5, 0.0}},
                               {"out", "sched.json"},
                               {"cost", 0.0123},
                               {"resumed_batches", 0}}));
  o.method = "ld3";
  r.details = {{"initial_valid_loss", 0.5}, {"best_iteration", 7}};
  EXPECT_EQ(jobs::search_summary(r, o),
            "ipndm NFE 3: sigmas 80.000000, 1.500000, 0.000000 (validation loss 0.0123, initial 0.5, best at step 7)");
  o.seed = 5;
  o.warmup = 2;
  o.valid = 1;
  EXPECT_EQ(o.sample_seeds(), (std::vector<uint64_t>{5, 6, 7}));
}

TEST(AnalyticReport, TrajectoryAndNllText) {
  EXPECT_EQ(jobs::trajectory_text({{"timesteps", {1, 500, 1000}}}), "1 500 1000\n");
  EXPECT_EQ(jobs::trajectory_text({{"timesteps", {1, 1000}}, {"cost", 0.25}, {"even_cost", 0.5}}),
            "1 1000\ncost 0.250000 (even: 0.500000)\n");
  NllResult r;
  r.bits_per_dim = 3.25, r.std_err = 0.0625, r.prior = 0.001, r.steps = 3, r.decoder = 0.125, r.count = 1000;
  EXPECT_EQ(jobs::nll_text(r, "even", 10, "analytic"),
            "3.2500 +- 0.0625 bits/dim (prior 0.0010, steps 3.0000, decoder 0.1250; K=10 even, analytic variance, "
            "1000 images)\n");
  NllJob job;
  job.trajectory = {1, 500, 1000};
  const nlohmann::json j = jobs::nll_report(r, job, "even", "ddpm-beta");
  EXPECT_EQ(j["command"], "nll");
  EXPECT_EQ(j["timesteps"], nlohmann::json({1, 500, 1000}));
  EXPECT_EQ(j["variance"], "ddpm-beta");
  EXPECT_EQ(j["trajectory"], "even");
  EXPECT_EQ(j["bits_per_dim"], 3.25);
}

TEST(AnalyticReport, GammaReportsOfAForwardOnlyRunAndAShard) {
  auto model = make_builtin("builtin:gmm:shape=2");
  GammaEstimation job;
  job.timesteps = {1, 2, 3};
  job.num_images = 8;
  job.batch = 4;
  const nlohmann::json f = jobs::gamma_forward_report(*model, job, 12.5);
  EXPECT_EQ(f, nlohmann::json({{"command", "estimate-gamma"},
                               {"mode", "forward-only"},
                               {"model", model->name()},
                               {"device", "cpu"},
                               {"timesteps", 3},
                               {"num_images", 8},
                               {"batch", 4},
                               {"images_per_second", 12.5}}));
  jobs::GammaJobOptions options;
  options.shard = jobs::parse_shard("1/2");
  jobs::GammaJobResult r;
  r.path = "g.shard-1-of-2.npz";
  r.image_range = {4, 8};
  r.resumed = 1;
  const nlohmann::json g = jobs::gamma_report(*model, NamedDataset(), job, options, r);
  EXPECT_EQ(g["dataset"], "npy data.npy (8 items 1x2x2)");
  EXPECT_EQ(g["out"], r.path);
  EXPECT_EQ(g["image_range"], nlohmann::json({4, 8}));
  EXPECT_EQ(g["shard"], options.shard.to_json());
  EXPECT_EQ(g["resumed_timesteps"], 1);
  EXPECT_FALSE(g.contains("images_per_second"));  // a shard's rate is merge's
}

class SampleReport : public testing_io::TempDirTest {};

TEST_F(SampleReport, DescribesTheRunAndItsSamples) {
  std::shared_ptr<const Model> model = open_model("builtin:gmm:shape=1x2x2,k=2");
  auto sampler = make_sampler("euler");
  SampleJob job;
  job.sigmas = make_sigmas("karras", 3, model->metadata().schedule, KeyValueArgs(""));
  job.seeds = {10, 11, 12};
  job.batch = 2;
  job.guidance_hi = 5;
  jobs::SampleJobOptions o;
  o.outputs.npz = path("s.npz");
  o.settings.dtype = "fp32";
  o.all_seeds = {9, 10, 11, 12};
  o.first_index = 1;
  const jobs::SampleJobResult r = jobs::run_sample_job(*sampler, {model}, job, o);
  const nlohmann::json j = jobs::sample_report(model, *sampler, job, o, r);
  EXPECT_EQ(j["command"], "sample");
  EXPECT_EQ(j["sampler"], "euler");
  EXPECT_EQ(j["steps"], static_cast<int>(job.sigmas.size()) - 1);
  EXPECT_EQ(j["nfe"], r.result.nfe);
  EXPECT_EQ(j["num_samples"], 3);
  EXPECT_EQ(j["seed_range"], nlohmann::json({1, 4}));
  EXPECT_EQ(j["batch"], 2);
  EXPECT_EQ(j["guidance_interval"], nlohmann::json({0.0, 5.0}));
  EXPECT_EQ(j["latent"], false);
  EXPECT_EQ(j["outputs"], nlohmann::json({{"npz", path("s.npz")}}));
  EXPECT_NEAR(j["sample_mean"].get<double>(), r.result.samples.to(torch::kFloat64).mean().item<double>(), 1e-12);
  job.guidance_hi = std::numeric_limits<double>::infinity();
  EXPECT_EQ(jobs::sample_report(model, *sampler, job, o, r)["guidance_interval"][1], "inf");
}
