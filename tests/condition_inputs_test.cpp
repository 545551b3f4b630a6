// Conditioning inputs as a user names them (scoreflow/condition_inputs.h) and sampling jobs from
// plain settings (scoreflow/jobs/prepare.h): what `scoreflow sample` and `eval fid --model` call
// after reading their flags. Expected rows, labels and ranges are worked out by hand below.
#include "scoreflow/condition_inputs.h"

#include <gtest/gtest.h>
#include <torch/script.h>

#include <cmath>

#include "scoreflow/error.h"
#include "scoreflow/jobs/prepare.h"
#include "scoreflow/jobs/sample.h"
#include "scoreflow/npy.h"
#include "support/io_test_util.h"
#include "support/jobs_test_util.h"

using namespace scoreflow;
using scoreflow::testing_jobs::expect_field_error;

namespace {

class ConditionInputsTest : public testing_io::TempDirTest {
 protected:
  /// D(x, σ) = 0.5·x + mean context + pooled: conditions "context" [3, 2] and "pooled" [2];
  /// `extra` adds metadata fields ("uncond", "num_classes").
  std::shared_ptr<Model> cond_model(const std::string& extra = R"(,"uncond":"zeros")") {
    torch::jit::Module m("CondNet");
    m.define("def forward(self, x, t, context, pooled):\n    return 0.5 * x + context.mean(1) + pooled\n");
    const std::string file = path("cond_net.pt");
    m.save(file,
           {{"scoreflow.json", R"({"prediction":"x0","schedule":{"type":"edm"},"time_input":"sigma","shape":[2],)"
                               R"("conditions":[{"name":"context","shape":[3,2]},{"name":"pooled","shape":[2]}])" +
                                   extra + "}"}});
    return open_model(file);
  }
  /// D = 0.5·x, class-conditional on 4 classes (labels unused).
  std::shared_ptr<Model> classed_model() {
    torch::jit::Module m("ClassNet");
    m.define("def forward(self, x, t, y):\n    return 0.5 * x\n");
    const std::string file = path("class_net.pt");
    m.save(file, {{"scoreflow.json", R"({"prediction":"x0","schedule":{"type":"edm"},"time_input":"sigma",)"
                                     R"("shape":[2],"num_classes":4})"}});
    return open_model(file);
  }
  /// An npz with `rows` rows of context (row r filled with r) and one row of pooled.
  std::string cond_file(const std::string& name, int64_t rows) {
    const std::string file = path(name);
    io::write_npz(
        file,
        {{"context",
          io::from_tensor(torch::arange(rows, torch::kFloat32).view({rows, 1, 1}).expand({rows, 3, 2}).contiguous())},
         {"pooled", io::from_tensor(torch::ones({1, 2}))}});
    return file;
  }
};

}  // namespace

TEST(ConditionInputs, RowListsAndIntervalsParse) {
  EXPECT_EQ(parse_condition_rows("0,2-4,1"), (std::vector<int64_t>{0, 2, 3, 4, 1}));
  EXPECT_EQ(parse_condition_rows("7"), (std::vector<int64_t>{7}));
  expect_field_error([] { parse_condition_rows("1,x"); }, "cond_rows", "item 'x' is not a row index");
  expect_field_error([] { parse_condition_rows("3-1"); }, "cond_rows", "range '3-1' must be a-b with a <= b");
  expect_field_error([] { parse_condition_rows(","); }, "cond_rows", "gives no rows");
  expect_field_error([] { parse_condition_rows("-2"); }, "cond_rows", "is not a row index");
  EXPECT_EQ(parse_guidance_interval("0.5,2"), (std::pair<double, double>(0.5, 2.0)));
  const auto open = parse_guidance_interval("0.25,inf");
  EXPECT_EQ(open.first, 0.25);
  EXPECT_TRUE(std::isinf(open.second) && open.second > 0);
  expect_field_error([] { parse_guidance_interval("1"); }, "guidance_interval", "'1' must be lo,hi");
  expect_field_error([] { parse_guidance_interval("1,nan"); }, "guidance_interval", "must be lo,hi");
}

TEST_F(ConditionInputsTest, ApplyGivesAShardTheRowsOfItsSamplesInTheWholeList) {
  auto model = cond_model();
  ConditionInputs in;
  in.cond = cond_file("cond.npz", 3);
  in.interval = "0.5,inf";
  in.rescale = 0.7;
  SampleJob job;
  job.seeds = {12, 13, 14};  // samples 2..4 of 5
  apply_condition_inputs(*model, in, job, 5, 2, 5);
  EXPECT_EQ(job.cond_rows, (std::vector<int64_t>{2, 0, 1}));  // i mod 3 for i = 2, 3, 4
  EXPECT_EQ(job.cond.rows, 3);
  EXPECT_EQ(job.cond.values[0][2][1][0].item<float>(), 2.0f);  // row 2 is filled with 2
  EXPECT_EQ(job.guidance_lo, 0.5);
  EXPECT_TRUE(std::isinf(job.guidance_hi));
  EXPECT_EQ(job.guidance_rescale, 0.7);

  // One explicit row is every sample's; a list gives one per sample.
  in.cond_rows = "1";
  SampleJob one;
  one.seeds = {0, 1, 2, 3};
  apply_condition_inputs(*model, in, one, 4, 0, 4);
  EXPECT_EQ(one.cond_rows, (std::vector<int64_t>{1, 1, 1, 1}));
  in.cond_rows = "2,0-1,2";
  SampleJob listed;
  listed.seeds = {1, 2};  // samples 1..2 of 4
  apply_condition_inputs(*model, in, listed, 4, 1, 3);
  EXPECT_EQ(listed.cond_rows, (std::vector<int64_t>{0, 1}));
}

TEST_F(ConditionInputsTest, ApplyRefusesInputsNamingTheField) {
  auto model = cond_model();
  SampleJob job;
  job.seeds = {0, 1};
  ConditionInputs rows_only;
  rows_only.cond_rows = "0";
  expect_field_error([&] { apply_condition_inputs(*model, rows_only, job, 2, 0, 2); }, "cond_rows",
                     "cond_rows needs cond");
  ConditionInputs out_of_range;
  out_of_range.cond = cond_file("cond3.npz", 3);
  out_of_range.cond_rows = "0,3";
  expect_field_error([&] { apply_condition_inputs(*model, out_of_range, job, 2, 0, 2); }, "cond_rows",
                     "entry 1 is row 3");
  ConditionInputs two_uncond;  // 2 unconditional rows for 3 conditional ones
  two_uncond.cond = out_of_range.cond;
  two_uncond.uncond = cond_file("uncond2.npz", 2);
  expect_field_error([&] { apply_condition_inputs(*model, two_uncond, job, 2, 0, 2); }, "uncond", "uncond");
}

TEST_F(ConditionInputsTest, FingerprintFollowsContentsNotPaths) {
  ConditionInputs a, b;
  a.cond = cond_file("a.npz", 2);
  b.cond = cond_file("b.npz", 2);
  EXPECT_EQ(condition_inputs_fingerprint(a), condition_inputs_fingerprint(b));
  b.cond = cond_file("c.npz", 3);
  EXPECT_NE(condition_inputs_fingerprint(a), condition_inputs_fingerprint(b));
  b = a;
  b.interval = "0,1";
  EXPECT_NE(condition_inputs_fingerprint(a), condition_inputs_fingerprint(b));
  EXPECT_EQ(condition_inputs_fingerprint(ConditionInputs()), "-||-||" + std::to_string(0.0));
}

TEST_F(ConditionInputsTest, ItemConditionsFromFilesReadsCondElseTheUnconditionalInput) {
  auto model = cond_model();
  const ItemConditions given = item_conditions_from_files(*model, 4, cond_file("one.npz", 1), "");
  EXPECT_EQ(given.source, "cond");
  EXPECT_EQ(given.tables.rows, 1);
  EXPECT_FALSE(given.unconditional());
  const ItemConditions none = item_conditions_from_files(*model, 4, "", "");
  EXPECT_TRUE(none.unconditional());
  EXPECT_NE(none.source.find("metadata uncond"), std::string::npos) << none.source;
  EXPECT_THROW(item_conditions_from_files(*model, 4, cond_file("three.npz", 3), ""), Error);  // 3 rows, 4 items
}

TEST_F(ConditionInputsTest, ClassLabelsAreTheLabelOrSeedModClasses) {
  auto classed = classed_model();
  EXPECT_TRUE(torch::equal(class_labels("random", *classed, {0, 5, 10, 3}), torch::tensor({0, 1, 2, 3}, torch::kLong)));
  EXPECT_TRUE(torch::equal(class_labels("2", *classed, {7, 8}), torch::tensor({2, 2}, torch::kLong)));
  EXPECT_FALSE(class_labels("", *classed, {7, 8}).defined());
  expect_field_error([&] { class_labels("2x", *classed, {1}); }, "label", "label '2x' is not an integer or 'random'");
  auto plain = cond_model();
  expect_field_error([&] { class_labels("1", *plain, {1}); }, "label",
                     "label needs a class-conditional model; " + plain->name() + " has num_classes 0");
}

TEST(PrepareSampleJob, TakesTheShardsWholeBatchesAndChecksEveryInput) {
  auto model = open_model("builtin:gmm:shape=1x6x6,k=3");
  jobs::SamplingChoice c;
  c.sampler = "euler";
  c.seeds = "0-9";
  c.grid.steps = 5;
  // 10 seeds in batches of 4 = 3 batches; shard 1 of 2 takes batches [1·3/2, 3) = seeds 4..9.
  jobs::Shard shard;
  shard.index = 1;
  shard.count = 2;
  const jobs::PreparedSampleJob p = jobs::prepare_sample_job(c, *model, 4, &shard);
  EXPECT_EQ(p.begin, 4);
  EXPECT_EQ(p.end, 10);
  EXPECT_EQ(p.job.seeds, (std::vector<uint64_t>{4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(p.all_seeds.size(), 10u);
  EXPECT_EQ(p.job.sigmas.size(), 6u);  // 5 steps, 0 appended (final zero)
  EXPECT_EQ(p.job.sigmas.back(), 0.0);
  EXPECT_EQ(p.final, FinalStep::Zero);
  EXPECT_EQ(p.job.batch, 4);
  EXPECT_EQ(p.grid.source, "schedule");

  jobs::SamplingChoice bad = c;
  expect_field_error([&] { jobs::prepare_sample_job(bad, *model, 0); }, "batch", "batch must be >= 1, got 0");
  bad.label = "1";  // the gmm builtin has no classes
  expect_field_error([&] { jobs::prepare_sample_job(bad, *model, 2); }, "label", "needs a class-conditional model");
  bad = c;
  bad.grid.nfe = 4;
  EXPECT_THROW(jobs::prepare_sample_job(bad, *model, 2), Error);  // steps and nfe both given
  bad.grid.steps = -1;
  const jobs::PreparedSampleJob by_nfe = jobs::prepare_sample_job(bad, *model, 2);
  EXPECT_EQ(by_nfe.grid.nfe_steps, 4);  // Euler: one call per step
  EXPECT_EQ(by_nfe.sampler->nfe_for(by_nfe.grid.nfe_steps, by_nfe.final), 4);
}

TEST(PrepareSampleJob, AnalyticSamplersGetTheGammaFile) {
  auto model = open_model("builtin:gmm:shape=1x6x6,k=3");
  jobs::SamplingChoice c;
  c.sampler = "analytic_ddim";
  c.grid.gamma = "/nonexistent/gamma.json";
  c.seeds = "0";
  try {
    jobs::prepare_sample_job(c, *model, 1);
    ADD_FAILURE() << "a missing Gamma file was accepted";
  } catch (const Error& e) {
    // Only the gamma= the job added can have brought the path to the sampler.
    EXPECT_NE(std::string(e.what()).find("/nonexistent/gamma.json"), std::string::npos) << e.what();
  }
}

TEST(PrepareSampleJob, ConditioningOfSeedsTakesTheUnconditionalInputWhenAsked) {
  auto model = open_model("builtin:gmm:shape=1x6x6,k=3");
  jobs::SamplingChoice c;
  c.guidance = 1.0;
  std::string note = "unchanged";
  const SampleJob job = jobs::prepare_conditioning(c, *model, {3, 4, 5}, true, &note);
  EXPECT_EQ(job.seeds, (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_TRUE(job.cond.empty());
  EXPECT_EQ(note, "");  // a model without conditions is left as it is
  c.cond.interval = "2,1x";
  expect_field_error([&] { jobs::prepare_conditioning(c, *model, {3}); }, "guidance_interval", "must be lo,hi");
}

TEST(ParseDevices, ListsEachDeviceAndRefusesEmptyEntries) {
  EXPECT_EQ(jobs::parse_devices(""), std::vector<std::string>{});
  EXPECT_EQ(jobs::parse_devices("cpu,cpu"), (std::vector<std::string>{"cpu", "cpu"}));
  expect_field_error([] { jobs::parse_devices("cpu,,cpu"); }, "devices", "devices 'cpu,,cpu' has an empty entry");
  expect_field_error([] { jobs::parse_devices("cpu,"); }, "devices", "has an empty entry");
  EXPECT_THROW(jobs::parse_devices("cpu,tpu"), Error);
}
