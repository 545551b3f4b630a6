// The shipped models load in this LibTorch and reproduce the outputs stored when they were
// exported (by Debian's torch 1.13, scripts/export_demo.py and scripts/train_features.py).
#include <gtest/gtest.h>
#include <torch/script.h>

#include <cmath>

#include "scoreflow/model.h"
#include "scoreflow/npy.h"

using namespace scoreflow;

namespace {
const std::string kModels = std::string(SCOREFLOW_SOURCE_DIR) + "/models/";
}

TEST(DemoModel, ForwardAndFeaturesMatchTheExportedReference) {
  auto ref = io::read_npz(kModels + "fashion_ddpm_ref.npz");
  torch::jit::Module net = torch::jit::load(kModels + "fashion_ddpm.pt");
  net.eval();
  torch::NoGradGuard no_grad;
  torch::Tensor x = io::to_tensor(ref.at("x")), t = io::to_tensor(ref.at("t"));
  torch::Tensor out = net.forward({x, t}).toTensor();
  torch::Tensor want = io::to_tensor(ref.at("out"));
  EXPECT_TRUE(torch::allclose(out, want, 1e-4, 1e-4)) << "max diff " << (out - want).abs().max().item<double>();
  torch::Tensor features = net.get_method("features")({x, t}).toTensor();
  EXPECT_TRUE(torch::allclose(features, io::to_tensor(ref.at("features")), 1e-4, 1e-4));
}

TEST(DemoModel, MetadataAndTheSigmaSpaceWrapperAgreeWithTheRawNetwork) {
  auto model = open_model(kModels + "fashion_ddpm.pt");
  const ModelMetadata& m = model->metadata();
  EXPECT_EQ(m.prediction, Prediction::Eps);
  EXPECT_EQ(m.head, Head::Eps2);
  EXPECT_EQ(m.shape, (std::vector<int64_t>{1, 32, 32}));
  EXPECT_EQ(m.schedule.num_train_steps(), 1000);
  ASSERT_TRUE(model->has_features());
  // At the integer timestep 137 the wrapper feeds the network x_t = α·x and index 137:
  // D(x, σ) = x − σ·ε̂ with ε̂ the network's first channel.
  auto ref = io::read_npz(kModels + "fashion_ddpm_ref.npz");
  torch::Tensor x_t = io::to_tensor(ref.at("x")).narrow(0, 1, 1);
  torch::Tensor eps = io::to_tensor(ref.at("out")).narrow(0, 1, 1).narrow(1, 0, 1);
  const double sigma = m.schedule.discrete_sigmas()[137];
  const double alpha = 1 / std::sqrt(1 + sigma * sigma);
  torch::Tensor x = x_t / alpha;
  auto [denoised, head] = model->denoise_with_head(x, {sigma}, {});
  EXPECT_TRUE(torch::allclose(denoised, x - sigma * eps, 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(head, io::to_tensor(ref.at("out")).narrow(0, 1, 1).narrow(1, 1, 1), 1e-4, 1e-4));
  EXPECT_EQ(model->features(x, {sigma}, {}).sizes(), (std::vector<int64_t>{1, 64}));
}

TEST(DemoModel, FeatureNetworkMatchesItsReferenceAndStatsAreConsistent) {
  auto ref = io::read_npz(kModels + "fashion_features_ref.npz");
  torch::jit::ExtraFilesMap extra{{"scoreflow.json", ""}};
  torch::jit::Module net = torch::jit::load(kModels + "fashion_features.pt", torch::kCPU, extra);
  net.eval();
  torch::NoGradGuard no_grad;
  torch::Tensor out = net.forward({io::to_tensor(ref.at("x"))}).toTensor();
  EXPECT_TRUE(torch::allclose(out, io::to_tensor(ref.at("out")), 1e-4, 1e-4));
  EXPECT_NE(extra["scoreflow.json"].find("\"dim\": 128"), std::string::npos) << extra["scoreflow.json"];
  auto stats = io::read_npz(kModels + "fashion_train_stats.npz");
  torch::Tensor mu = io::to_tensor(stats.at("mu")), sigma = io::to_tensor(stats.at("sigma"));
  EXPECT_EQ(mu.sizes(), (std::vector<int64_t>{128}));
  EXPECT_TRUE(torch::allclose(sigma, sigma.t()));
  EXPECT_GT(torch::linalg_eigvalsh(sigma, "L").min().item<double>(), -1e-8);
}
