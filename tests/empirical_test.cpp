// builtin:empirical: the exact smoothed-empirical denoiser/score (docs/design.md §6).
#include "scoreflow/empirical.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "scoreflow/error.h"
#include "scoreflow/npy.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "scoreflow/sigmas.h"

using namespace scoreflow;

namespace {

std::shared_ptr<EmpiricalModel> small_model(torch::Tensor data) {
  ModelMetadata meta;
  meta.shape = {data.size(1)};
  return std::make_shared<EmpiricalModel>("empirical-test", "test data", data, meta);
}

}  // namespace

TEST(Empirical, ScoreIsTheGradientOfLogDensity) {
  torch::Tensor data = torch::randn({50, 3}, torch::kFloat64);
  auto model = small_model(data);
  torch::Tensor x = torch::randn({4, 3}, torch::kFloat64);
  for (double sigma : {0.3, 1.0, 5.0}) {
    torch::Tensor score = model->score(x, {sigma});
    const double h = 1e-5;
    for (int j = 0; j < 3; ++j) {
      torch::Tensor e = torch::zeros({1, 3}, torch::kFloat64);
      e[0][j] = h;
      torch::Tensor fd = (model->log_prob(x + e, {sigma}) - model->log_prob(x - e, {sigma})) / (2 * h);
      EXPECT_TRUE(torch::allclose(fd, score.select(1, j), 1e-6, 1e-6)) << "sigma " << sigma << " dim " << j;
    }
  }
}

TEST(Empirical, StreamingMatchesADirectSoftmaxOverManyChunks) {
  // 10000 items span several 4096-item chunks: the streamed log-sum-exp must equal one softmax.
  torch::Tensor data = torch::randn({10000, 2}, torch::kFloat64);
  auto model = small_model(data);
  torch::Tensor x = torch::randn({3, 2}, torch::kFloat64) * 2;
  const double sigma = 0.2;
  torch::Tensor logits = -(x.unsqueeze(1) - data.unsqueeze(0)).pow(2).sum(-1) / (2 * sigma * sigma);
  torch::Tensor want = torch::softmax(logits, 1).matmul(data);
  EXPECT_TRUE(torch::allclose(model->denoise(x, {sigma}, {}), want, 1e-10, 1e-12));
  // Log density: log mean_i N(x; x_i, σ²I).
  torch::Tensor logp = torch::logsumexp(logits, 1) - std::log(10000.0) - 2 * std::log(sigma * std::sqrt(2 * M_PI));
  EXPECT_TRUE(torch::allclose(model->log_prob(x, {sigma}), logp, 1e-10, 1e-10));
}

TEST(Empirical, SamplingReproducesTrainingItems) {
  torch::Tensor data = torch::tensor({{-1.0, 0.5}, {0.7, 0.2}, {0.1, -0.8}}, torch::kFloat64);
  auto model = small_model(data);
  SampleJob job;
  job.sigmas = make_sigmas("karras", 40, model->metadata().schedule, KeyValueArgs(""));
  job.seeds = {0, 1, 2, 3, 4, 5};
  torch::Tensor x = run_sampler(*make_sampler("heun"), model, job).samples.to(torch::kFloat64);
  torch::Tensor nearest = std::get<0>((x.unsqueeze(1) - data.unsqueeze(0)).pow(2).sum(-1).min(1));
  EXPECT_LT(nearest.max().item<double>(), 1e-4);
}

TEST(Empirical, OpensADatasetFromAnNpyFile) {
  std::string path = ::testing::TempDir() + "/empirical.npy";
  io::write_npy(path, io::from_tensor(torch::rand({20, 1, 4, 4}) * 2 - 1));
  auto model = open_model("builtin:empirical:data=" + path + ",limit=10");
  EXPECT_EQ(model->metadata().shape, (std::vector<int64_t>{1, 4, 4}));
  EXPECT_NE(model->summary().find("memorises"), std::string::npos);
  EXPECT_THROW(open_model("builtin:empirical"), Error);
  EXPECT_THROW(open_model("builtin:empirical:data=/nonexistent.npy"), Error);
}
