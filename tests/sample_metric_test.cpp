// The metric interface that compare and eval fid share (scoreflow/sample_metric.h,
// scoreflow/fd_metric.h), in process: every metric fed in batches over several streams and merged
// gives value() of the whole set, and eval fid's report is the FdMetric's result, the same FD that
// compare's fd gives.
#include "scoreflow/sample_metric.h"

#include <gtest/gtest.h>

#include <string>

#include "scoreflow/fd_metric.h"
#include "scoreflow/jobs/eval.h"
#include "scoreflow/latent.h"
#include "scoreflow/npy.h"
#include "scoreflow/registry.h"
#include "scoreflow/sample_files.h"
#include "support/io_test_util.h"

using namespace scoreflow;

namespace {

class MetricStreams : public testing_io::PointsDirTest {
 protected:
  /// `metric` of x [60, ...] fed as rows 0..24 and 25..39 to one stream and 40..59 to a second,
  /// merged into the first.
  static eval::MetricResult in_pieces(const eval::SampleMetric& metric, const torch::Tensor& x) {
    auto first = metric.start(0, 0), second = metric.start(0, 40);
    first->add(x.narrow(0, 0, 25));
    first->add(x.narrow(0, 25, 15));
    second->add(x.narrow(0, 40, 20));
    first->merge(*second);
    EXPECT_EQ(first->count(), 60);
    return metric.result(*first);
  }
};

TEST_F(MetricStreams, EveryMetricFedInBatchesAndMergedGivesTheWholeSetsValue) {
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({60, 2}, torch::kFloat64) * 0.6 + 0.4;
  const std::string data = points("data.npy", torch::randn({80, 2}) * 0.5 + 0.5);
  auto gauss = open_model("builtin:gaussian:shape=2,mean=0.5,std=0.5");
  auto ring = open_model("builtin:ring8");
  // w2 (exact Bures, sliced against data) and ode-error see the joined rows: equal to the bit.
  eval::SampleMetricOptions w2;
  auto bures = eval::make_sample_metric(w2, gauss, ImageDecoder::for_model(gauss));
  EXPECT_EQ(in_pieces(*bures, x).value, bures->value(x));
  w2.ref_data = data;
  auto sliced = eval::make_sample_metric(w2, ring, ImageDecoder::for_model(ring));
  EXPECT_EQ(in_pieces(*sliced, x).value, sliced->value(x));
  eval::SampleMetricOptions ode;
  ode.metric = "ode-error";
  auto rms = eval::make_sample_metric(ode, gauss, ImageDecoder::for_model(gauss));
  rms->set_reference_samples(x.flip(0));
  EXPECT_EQ(in_pieces(*rms, x).value, rms->value(x));
  EXPECT_GT(rms->value(x), 0.1);
  // fd merges feature moments (an exact identity, so equal up to rounding).
  eval::SampleMetricOptions fd;
  fd.metric = "fd";
  fd.ref_data = data;
  auto frechet = eval::make_sample_metric(fd, gauss, ImageDecoder::for_model(gauss));
  const double whole = frechet->value(x);
  EXPECT_GT(whole, 0.05);
  EXPECT_NEAR(in_pieces(*frechet, x).value, whole, 1e-12 * whole);
}

TEST_F(MetricStreams, EvalFidReportsTheFdMetricsResultWhichIsComparesFd) {
  torch::manual_seed(4);
  jobs::FidJob job;
  job.features = "none";
  job.ref_data = points("ref.npy", torch::randn({80, 2}) * 0.5 + 0.5);
  job.samples_path = points("samples.npy", torch::randn({50, 2}) * 0.7 + 0.2);
  job.fid.batch = 16;
  job.fid.kid = true;
  job.fid.kid_options.subsets = 5;
  job.fid.kid_options.subset_size = 1000;  // capped at the 50 samples
  const jobs::FidJobResult r = jobs::fid_job(job);
  ASSERT_TRUE(r.metrics.fd && r.metrics.kid && r.metrics.sliced_w2_squared);

  // The same metric built and fed here, in three unequal pieces.
  auto fx = std::make_shared<const eval::FeatureNetworks>("none", std::vector<torch::Device>{torch::kCPU});
  const torch::Tensor samples = io::load_sample_rows(job.samples_path, -1, 1);
  const eval::FdMetric metric(
      fx, jobs::fid_reference_from_rows(*fx, io::load_sample_rows(job.ref_data, -1, 1), -1, 1, "ref", job.fid), job.fid,
      -1, 1);
  auto stream = metric.start();
  for (const auto& [begin, size] : {std::pair<int64_t, int64_t>{0, 7}, {7, 30}, {37, 13}})
    stream->add(samples.narrow(0, begin, size));
  const eval::MetricResult res = metric.result(*stream);
  EXPECT_NEAR(res.value, *r.metrics.fd, 1e-12 * *r.metrics.fd);
  EXPECT_EQ(r.report["fd"].get<double>(), *r.metrics.fd);
  // KID and sliced W2 see the same rows, so they agree to the bit.
  EXPECT_EQ(res.extra.at("kid_mean"), r.metrics.kid->mean);
  EXPECT_EQ(res.extra.at("kid_std"), r.metrics.kid->std);
  EXPECT_EQ(res.extra.at("kid_subset_size"), 50);
  EXPECT_EQ(r.report["kid"]["subset_size"], 50);
  EXPECT_EQ(res.extra.at("sliced_w2_squared"), *r.metrics.sliced_w2_squared);

  // compare's fd (its own loaders, one network call per cell) gives eval fid's FD.
  auto model = open_model("builtin:gaussian:shape=2");
  eval::SampleMetricOptions fd;
  fd.metric = "fd";
  fd.ref_data = job.ref_data;
  auto compare_fd = eval::make_sample_metric(fd, model, ImageDecoder::for_model(model));
  EXPECT_EQ(compare_fd->label(), "FD (raw samples)");
  EXPECT_NEAR(compare_fd->value(samples), *r.metrics.fd, 1e-12 * *r.metrics.fd);
  EXPECT_GT(*r.metrics.fd, 0.01);
}

}  // namespace
