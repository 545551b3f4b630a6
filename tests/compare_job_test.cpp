// The typed sample metrics (scoreflow/sample_metric.h) and the compare sweep as a library call
// (scoreflow/compare.h), in process: exact metric values on oracles, the factory's errors naming
// fields, and a tiny sweep's cells, NFE counts and files.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "scoreflow/compare.h"
#include "scoreflow/error.h"
#include "scoreflow/jobs.h"
#include "scoreflow/latent.h"
#include "scoreflow/model.h"
#include "scoreflow/registry.h"
#include "scoreflow/sample_metric.h"
#include "support/io_test_util.h"
#include "support/jobs_test_util.h"

namespace fs = std::filesystem;
using namespace scoreflow;

namespace {

const char* const kGauss = "builtin:gaussian:shape=2,mean=0.5,std=0.5";

using testing_jobs::error_of;
using testing_jobs::field_names;

TEST(SampleMetric, FactoryNamesTheFieldAndTheValidValues) {
  auto model = open_model(kGauss);
  eval::SampleMetricOptions o;
  o.metric = "bogus";
  const Error e = error_of([&] { eval::make_sample_metric(o, model, ImageDecoder::for_model(model)); });
  EXPECT_EQ(e.field(), "metric");
  EXPECT_STREQ(e.what(), "metric 'bogus' is unknown; valid: fd, w2, ode-error");
  EXPECT_EQ(eval::sample_metric_names(), (std::vector<std::string>{"fd", "w2", "ode-error"}));
  // fd needs exactly one reference; w2 off a single Gaussian needs data: the fields are named.
  o.metric = "fd";
  EXPECT_EQ(field_names(error_of([&] { eval::make_sample_metric(o, model, ImageDecoder::for_model(model)); })),
            (std::vector<std::string>{"metric", "ref", "ref_data"}));
  auto ring = open_model("builtin:ring8");
  o.metric = "w2";
  EXPECT_EQ(field_names(error_of([&] { eval::make_sample_metric(o, ring, ImageDecoder::for_model(ring)); })),
            (std::vector<std::string>{"metric", "ref_data"}));
}

TEST(SampleMetric, W2OnTheGaussianIsTheExactBuresDistanceOfTheSampleMoments) {
  // Four points (1 ± s, 1 ± t): mean (1, 1), no cross-covariance, unbiased variances 4s²/3 and
  // 4t²/3 = 1 and 1/16 for s = √3/2, t = √3/8. Against N(0.5, 0.25·I):
  // W2² = 2·0.5² + (1 − 0.5)² + (0.25 − 0.5)² = 0.8125.
  auto model = open_model(kGauss);
  auto metric = eval::make_sample_metric({}, model, ImageDecoder::for_model(model));
  EXPECT_EQ(metric->name(), "w2");
  EXPECT_FALSE(metric->needs_reference_samples());
  const double s = std::sqrt(3.0) / 2, t = std::sqrt(3.0) / 8;
  const torch::Tensor x =
      torch::tensor({1 + s, 1 + t, 1 + s, 1 - t, 1 - s, 1 + t, 1 - s, 1 - t}, torch::kFloat64).reshape({4, 2});
  EXPECT_NEAR(metric->value(x), std::sqrt(0.8125), 1e-12);
}

TEST(SampleMetric, OdeErrorIsTheRmsDistanceToTheReferenceSamples) {
  auto model = open_model("builtin:gmm:shape=1x2x2,k=2");
  eval::SampleMetricOptions o;
  o.metric = "ode-error";
  o.reference_steps = 40;
  auto metric = eval::make_sample_metric(o, model, ImageDecoder::for_model(model));
  EXPECT_TRUE(metric->needs_reference_samples());
  EXPECT_EQ(metric->label(), "RMS distance to heun with 40 steps");
  const torch::Tensor ref = torch::zeros({3, 1, 2, 2});
  EXPECT_THROW(metric->value(ref), Error);  // no reference yet
  metric->set_reference_samples(ref);
  // Sample i is off by i + 1 in each of 4 entries: distances 2, 4, 6; RMS √((4 + 16 + 36) / 3).
  const torch::Tensor x = torch::arange(1, 4, torch::kFloat32).reshape({3, 1, 1, 1}).expand({3, 1, 2, 2});
  EXPECT_NEAR(metric->value(x), std::sqrt(56.0 / 3), 1e-6);
}

TEST(ChooseFinal, SamplersDefaultOrTheNamedStepCheckedAgainstItsArgs) {
  auto heun = make_sampler("heun");
  auto amed = make_sampler("amed", "r=0.5");
  EXPECT_EQ(jobs::choose_final("", *heun, ""), FinalStep::Zero);
  EXPECT_EQ(jobs::choose_final("", *amed, "r=0.5"), FinalStep::None);  // the AMED paper's convention
  EXPECT_EQ(jobs::choose_final("denoise", *heun, ""), FinalStep::Denoise);
  const Error unknown = error_of([&] { jobs::choose_final("last", *heun, ""); });
  EXPECT_STREQ(unknown.what(), "final: unknown value 'last'; valid: zero, none, denoise");
  EXPECT_EQ(unknown.field(), "final");
  auto ipndm = make_sampler("ipndm", "denoise_to_zero=true");
  EXPECT_EQ(jobs::choose_final("", *ipndm, "denoise_to_zero=true"), FinalStep::Zero);
  EXPECT_EQ(field_names(error_of([&] { jobs::choose_final("none", *ipndm, "denoise_to_zero=true"); })),
            (std::vector<std::string>{"sampler_args", "final", "final"}));
}

class CompareJob : public testing_io::TempDirTest {};

TEST_F(CompareJob, SweepsSamplersTimesBudgetsWithTheirNfeCountsAndWritesTheReports) {
  auto model = open_model(kGauss);
  jobs::CompareOptions o;
  o.samplers = {"euler", "heun"};
  o.nfe = {0, 3, 4};
  o.job.seeds = {0, 1, 2, 3, 4, 5, 6, 7};
  o.job.batch = 8;
  o.out_dir = path("out");
  int64_t calls = 0;
  o.on_cell = [&](int64_t done, int64_t total) {
    EXPECT_EQ(done, ++calls);
    EXPECT_EQ(total, 6);
  };
  const jobs::CompareResult r = jobs::run_compare(model, ImageDecoder::for_model(model), o);
  ASSERT_EQ(r.cells.size(), 6u);
  EXPECT_EQ(calls, 6);
  // Euler: one call per step. Heun on a grid ending in 0: 2N − 1 calls for N steps, so budget 3
  // and budget 4 both take 2 steps and 3 calls. Budget 0 is below both minimums: an error in the cell.
  const std::vector<std::tuple<std::string, int, int, long>> want = {{"euler", 0, 0, 0}, {"euler", 3, 3, 3},
                                                                     {"euler", 4, 4, 4}, {"heun", 0, 0, 0},
                                                                     {"heun", 3, 2, 3},  {"heun", 4, 2, 3}};
  for (size_t i = 0; i < want.size(); ++i) {
    const eval::SweepCell& c = r.cells[i];
    const auto& [sampler, budget, steps, nfe] = want[i];
    EXPECT_EQ(c.sampler, sampler);
    EXPECT_EQ(c.nfe_budget, budget);
    EXPECT_EQ(r.finals[i], FinalStep::Zero);
    if (budget == 0) {
      EXPECT_FALSE(c.ok()) << sampler;
      continue;
    }
    ASSERT_TRUE(c.ok()) << c.error;
    EXPECT_EQ(c.steps, steps) << sampler << budget;
    EXPECT_EQ(c.nfe_used, nfe) << sampler << budget;
    EXPECT_TRUE(std::isfinite(c.metric) && c.metric > 0);
  }
  EXPECT_EQ(r.num_samples, 8);
  EXPECT_EQ(r.label, "W2 (Bures, sample moments vs the model's Gaussian)");
  for (const std::string& f : {r.table_path, r.csv_path, r.plot_path}) EXPECT_TRUE(fs::exists(f)) << f;
  EXPECT_EQ(r.csv_path, path("out") + "/results.csv");
  EXPECT_FALSE(fs::exists(path("out") + ".parts"));  // nothing left to resume
  EXPECT_TRUE(r.grids.empty());                      // points, not images
}

TEST_F(CompareJob, AnInterruptedSweepResumesItsFinishedCellsToTheSameResults) {
  auto model = open_model("builtin:gmm:shape=1x2x2,k=2");
  const ImageDecoder decoder = ImageDecoder::for_model(model);
  jobs::CompareOptions o;
  o.samplers = {"euler", "heun"};
  o.nfe = {3, 5};
  o.job.seeds = {0, 1, 2, 3};
  o.metric.metric = "ode-error";
  o.metric.reference_steps = 20;
  o.out_dir = path("out");
  const jobs::CompareResult whole = jobs::run_compare(model, decoder, o);
  EXPECT_EQ(whole.resumed, 0);
  jobs::CompareOptions killed = o;
  killed.out_dir = path("again");
  killed.on_cell = [](int64_t done, int64_t) {
    if (done == 2) throw std::runtime_error("killed");
  };
  EXPECT_THROW(jobs::run_compare(model, decoder, killed), std::runtime_error);
  EXPECT_TRUE(fs::exists(path("again") + ".parts"));
  o.out_dir = path("again");
  const jobs::CompareResult resumed = jobs::run_compare(model, decoder, o);
  EXPECT_EQ(resumed.resumed, 3);  // the reference and two cells
  ASSERT_EQ(resumed.cells.size(), whole.cells.size());
  for (size_t i = 0; i < whole.cells.size(); ++i) {
    EXPECT_EQ(resumed.cells[i].metric, whole.cells[i].metric) << i;
    EXPECT_EQ(resumed.cells[i].nfe_used, whole.cells[i].nfe_used) << i;
  }
  EXPECT_FALSE(fs::exists(path("again") + ".parts"));
}

TEST_F(CompareJob, RefusesBadSettingsNamingTheField) {
  auto model = open_model(kGauss);
  const ImageDecoder decoder = ImageDecoder::for_model(model);
  jobs::CompareOptions o;
  o.samplers = {"euler"};
  o.nfe = {3};
  o.job.seeds = {0, 1};
  o.out_dir = path("out");
  auto field = [&](const jobs::CompareOptions& bad) {
    return error_of([&] { jobs::run_compare(model, decoder, bad); }).field();
  };
  jobs::CompareOptions bad = o;
  bad.sampler_args["ddim"] = "eta=1";
  EXPECT_EQ(field(bad), "sampler_args");
  bad = o;
  bad.nfe = {-1};
  EXPECT_EQ(field(bad), "nfe");
  bad = o;
  bad.final = "last";
  EXPECT_EQ(field(bad), "final");
  bad = o;
  bad.metric.metric = "kid";
  EXPECT_EQ(field(bad), "metric");
  bad = o;
  bad.job.seeds = {0};
  EXPECT_EQ(field(bad), "seeds");
  bad = o;
  bad.schedules = {"karras"};
  bad.schedule_args = "rho=3";
  EXPECT_EQ(field(bad), "schedule_args");
  EXPECT_FALSE(fs::exists(path("out")));  // refused before any output
}

}  // namespace
