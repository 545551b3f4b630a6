// Score matching against exact oracles: the DSM − SM = d(1 − Γ*) identity for wrong networks
// (analytic and TorchScript), SM = 0 for the exact network, batch-size independence.
#include "scoreflow/score_matching.h"

#include <gtest/gtest.h>
#include <torch/script.h>

#include <cmath>

#include "scoreflow/error.h"
#include "scoreflow/npy.h"

using namespace scoreflow;

namespace {

/// 40 points on a circle of radius 1.5 (spacing ≈ 0.24), slightly jittered, written as .npy.
std::string ring_dataset(const std::string& name) {
  torch::manual_seed(3);
  torch::Tensor angle = torch::arange(40, torch::kFloat64) * (2 * M_PI / 40);
  torch::Tensor pts = torch::stack({angle.cos(), angle.sin()}, 1) * 1.5 + 0.01 * torch::randn({40, 2}, torch::kFloat64);
  std::string path = ::testing::TempDir() + "/" + name;
  io::write_npy(path, io::from_tensor(pts.to(torch::kFloat32)));
  return path;
}

/// A random tanh network predicting ε on a VP discrete chain (a "wrong" TorchScript network).
std::string random_vp_net(const std::string& name) {
  torch::jit::Module m("RandomEps");
  torch::manual_seed(11);
  m.register_parameter("w", torch::randn({2, 2}), false);
  m.define(R"(
def forward(self, x, t):
    return torch.tanh(torch.matmul(x, self.w) + 0.001 * t.unsqueeze(1))
)");
  std::string path = ::testing::TempDir() + "/" + name;
  m.save(path, {{"scoreflow.json",
                 R"({"prediction": "eps", "schedule": {"type": "vp_discrete", "betas": "linear", "beta_start": 1e-4,
                     "beta_end": 0.02, "num_train_steps": 1000}, "time_input": "index", "shape": [2], "data_range": [-2, 2]})"}});
  return path;
}

void expect_identity(const std::vector<eval::ScoreMatchingRow>& rows) {
  for (const auto& r : rows) {
    EXPECT_LT(std::abs(r.residual), 4 * r.residual_se + 1e-9)
        << "sigma " << r.sigma << " residual " << r.residual << " se " << r.residual_se;
    EXPECT_NEAR(r.gap - r.gap_expected, r.residual, 1e-9 * (1 + std::abs(r.gap)));
    EXPECT_GE(r.sm, 0.0);
    EXPECT_GE(r.gamma_star, 0.0);
  }
}

}  // namespace

TEST(ScoreMatching, IdentityHoldsForAWrongAnalyticNetworkOnAnEmpiricalTarget) {
  auto model = open_model("builtin:gaussian:shape=2,mean=0.3,std=0.7");
  eval::ExactTarget target(ring_dataset("sm_ring.npy"), model->metadata());
  EXPECT_TRUE(target.empirical());
  EXPECT_EQ(target.size(), 40);
  eval::ScoreMatchingOptions o;
  o.sigmas = {0.02, 0.2, 1.0, 5.0, 50.0};
  o.num_images = 400;
  auto rows = eval::score_matching(*model, target, o);
  ASSERT_EQ(rows.size(), 5u);
  expect_identity(rows);
  // The network is wrong: SM is clearly positive at moderate σ; at large σ both scores → −x/σ².
  EXPECT_GT(rows[1].sm, 10 * rows[1].sm_se);
  // Small σ against 0.24 spacing: p_σ is nearly atomic, so ε* ≈ ε and Γ* ≈ E‖ε‖²/d = 1 (s.e. 0.05).
  EXPECT_NEAR(rows[0].gamma_star, 1.0, 0.2);
}

TEST(ScoreMatching, IdentityHoldsForARandomTorchScriptVpNetwork) {
  auto model = open_model(random_vp_net("sm_random_vp.pt"));
  eval::ExactTarget target(ring_dataset("sm_ring_vp.npy"), model->metadata());
  eval::ScoreMatchingOptions o;
  o.sigmas = eval::evaluation_sigmas(model->metadata().schedule, 4);
  ASSERT_EQ(o.sigmas.size(), 4u);
  // vp_discrete: the levels are the chain's own σ_n, from t = N−1 down to t = 0.
  EXPECT_DOUBLE_EQ(o.sigmas.front(), model->metadata().schedule.discrete_sigmas().back());
  EXPECT_DOUBLE_EQ(o.sigmas.back(), model->metadata().schedule.discrete_sigmas().front());
  o.num_images = 300;
  expect_identity(eval::score_matching(*model, target, o));
}

TEST(ScoreMatching, ExactNetworkHasZeroScoreMatchingLoss) {
  // Model = target: SM vanishes (up to the float32 input the network sees), DSM = d(1 − Γ*).
  const std::string spec = "builtin:gmm:shape=1x2x2,k=3,std=0.2";
  auto model = open_model(spec);
  eval::ExactTarget target(spec, model->metadata());
  EXPECT_FALSE(target.empirical());
  eval::ScoreMatchingOptions o;
  o.sigmas = {0.1, 1.0, 10.0};
  o.num_images = 200;
  for (const auto& r : eval::score_matching(*model, target, o)) {
    EXPECT_LT(r.sm, 1e-6 * r.d) << "sigma " << r.sigma;
    EXPECT_NEAR(r.dsm, r.gap_expected, 4 * r.residual_se + 1e-6);
  }
}

TEST(ScoreMatching, ResultsDoNotDependOnBatchSize) {
  auto model = open_model("builtin:ring8");
  eval::ExactTarget target(ring_dataset("sm_ring_batch.npy"), model->metadata());
  eval::ScoreMatchingOptions a;
  a.sigmas = {0.3, 3.0};
  a.num_images = 50;
  a.batch = 7;
  eval::ScoreMatchingOptions b = a;
  b.batch = 64;
  auto ra = eval::score_matching(*model, target, a), rb = eval::score_matching(*model, target, b);
  for (size_t k = 0; k < ra.size(); ++k) {
    EXPECT_DOUBLE_EQ(ra[k].dsm, rb[k].dsm);
    EXPECT_DOUBLE_EQ(ra[k].sm, rb[k].sm);
  }
}

TEST(ScoreMatching, RefusesMismatchedData) {
  auto model = open_model("builtin:gaussian:shape=3");
  EXPECT_THROW(eval::ExactTarget(ring_dataset("sm_ring_bad.npy"), model->metadata()), Error);
  EXPECT_THROW(eval::ExactTarget("builtin:ring8", model->metadata()), Error);
  EXPECT_THROW(eval::evaluation_sigmas(model->metadata().schedule, 0), Error);
}
