// Lipschitz estimates on linear networks with known spectra, and the Wasserstein bounds on the
// Gaussian oracle (bound ≥ true W2; the PF-ODE coupling ≈ true W2 for Gaussians).
#include "scoreflow/wbound.h"

#include <gtest/gtest.h>
#include <torch/script.h>

#include <cmath>

using namespace scoreflow;

namespace {

/// A TorchScript x0-predicting network D(x, σ) = x Bᵀ (so ∇_x D = B), EDM schedule, shape [d].
std::string linear_net(const torch::Tensor& b, const std::string& name) {
  torch::jit::Module m("Linear");
  m.register_parameter("bt", b.t().contiguous().to(torch::kFloat32), false);
  m.define(R"(
def forward(self, x, t):
    return torch.matmul(x, self.bt)
)");
  std::string path = ::testing::TempDir() + "/" + name;
  m.save(path,
         {{"scoreflow.json", R"({"prediction": "x0", "schedule": {"type": "edm"}, "time_input": "sigma", "shape": [)" +
                                 std::to_string(b.size(0)) + R"(]})"}});
  return path;
}

/// Q diag(eigs) Qᵀ with a fixed random orthogonal Q.
torch::Tensor symmetric_with(const std::vector<double>& eigs) {
  torch::manual_seed(5);
  const int64_t d = static_cast<int64_t>(eigs.size());
  torch::Tensor q = std::get<0>(at::linalg_qr(torch::randn({d, d}, torch::kFloat64)));
  return q.matmul(torch::diag(torch::tensor(eigs, torch::kFloat64))).matmul(q.t());
}

}  // namespace

TEST(Lipschitz, LinearSymmetricNetworkGivesItsKnownTopEigenvalue) {
  // Score Jacobian (A − I)/σ² has eigenvalues (e − 1)/σ²: all negative, so the one-sided constant
  // (−0.1/σ²) is not the largest-magnitude one (−1.3/σ²): this exercises the shifted second pass.
  torch::Tensor a = symmetric_with({0.9, 0.5, 0.1, -0.3});
  auto model = open_model(linear_net(a, "lip_sym.pt"));
  for (double sigma : {0.5, 2.0}) {
    torch::Tensor x = torch::randn({5, 4});
    auto j = eval::score_jacobian_extremes(*model, x, sigma, 100, 1);
    const double s2 = sigma * sigma;
    EXPECT_TRUE(torch::allclose(j.one_sided, torch::full({5}, -0.1 / s2, torch::kFloat64), 1e-3, 1e-4)) << j.one_sided;
    EXPECT_TRUE(torch::allclose(j.spectral, torch::full({5}, 1.3 / s2, torch::kFloat64), 1e-3, 1e-4)) << j.spectral;
  }
}

TEST(Lipschitz, NonSymmetricNetworkUsesTheSymmetricPart) {
  // B = A + K with K skew: sym(B) = A, so the one-sided constant is (λ_max(A) − 1)/σ² = 0.5 (A's
  // top eigenvalue 1.5: an expanding network); the spectral norm is the top singular value of B − I.
  torch::Tensor a = symmetric_with({1.5, 0.2, -0.4});
  torch::Tensor k = torch::tensor({{0.0, 0.7, -0.2}, {-0.7, 0.0, 0.4}, {0.2, -0.4, 0.0}}, torch::kFloat64);
  torch::Tensor b = a + k;
  auto model = open_model(linear_net(b, "lip_skew.pt"));
  auto j = eval::score_jacobian_extremes(*model, torch::randn({3, 3}), 1.0, 200, 2);
  const double spectral = at::linalg_svdvals(b - torch::eye(3, torch::kFloat64)).max().item<double>();
  EXPECT_NEAR(j.one_sided.max().item<double>(), 0.5, 1e-3);
  EXPECT_NEAR(j.spectral.max().item<double>(), spectral, 1e-3 * spectral);
}

TEST(Lipschitz, AScaledIdentityNetworkInFloat32GivesItsEigenvalueNotNaN) {
  // D = c·x: the score Jacobian is (c − 1)/σ² · I, so the shifted second pass meets exact zero
  // vectors; in float32 they once normalised to 0/0 = NaN. c = 1 (the identity) has score Jacobian 0.
  for (double c : {0.5, 1.0}) {
    auto model = open_model(linear_net(torch::eye(4, torch::kFloat64) * c, "lip_scaled.pt"));
    for (double sigma : {0.5, 3.0}) {
      auto j = eval::score_jacobian_extremes(*model, torch::randn({6, 4}), sigma, 10, 3);
      const double want = (c - 1) / (sigma * sigma);
      EXPECT_TRUE(torch::allclose(j.one_sided, torch::full({6}, want, torch::kFloat64), 1e-5, 1e-6))
          << "c " << c << " sigma " << sigma << ": " << j.one_sided;
      EXPECT_TRUE(torch::allclose(j.spectral, torch::full({6}, std::abs(want), torch::kFloat64), 1e-5, 1e-6))
          << "c " << c << " sigma " << sigma << ": " << j.spectral;
    }
  }
}

TEST(Lipschitz, GaussianOracleScoreJacobianIsMinusIdentityOverTotalVariance) {
  auto model = open_model("builtin:gaussian:shape=3,std=2");  // score −x/(σ² + 4)
  auto j = eval::score_jacobian_extremes(*model, torch::randn({4, 3}, torch::kFloat64), 1.5, 20);
  EXPECT_TRUE(torch::allclose(j.one_sided, torch::full({4}, -1 / (2.25 + 4), torch::kFloat64), 1e-8, 1e-10));
  EXPECT_TRUE(torch::allclose(j.spectral, torch::full({4}, 1 / (2.25 + 4), torch::kFloat64), 1e-8, 1e-10));
}

TEST(WassersteinBound, KwonBoundIsAboveTheTrueW2OnTheGaussianOracle) {
  // Network N(0.5, 2²I) vs data N(0, I) in 2-D: true W2 = sqrt(2·0.5² + 2·(2 − 1)²).
  auto model = open_model("builtin:gaussian:shape=2,mean=0.5,std=2");
  eval::ExactTarget target("builtin:gaussian:shape=2", model->metadata());
  eval::WBoundOptions o;
  o.sigmas = eval::evaluation_sigmas(model->metadata().schedule, 40);
  o.num_images = 2000;
  o.lipschitz_points = 4;
  o.iterations = 10;
  o.ode_samples = 400;
  o.dtype = torch::kFloat64;
  auto r = eval::wasserstein_bound(model, target, o);
  ASSERT_TRUE(r.has_true_w2);
  const double w2 = std::sqrt(2 * 0.25 + 2 * 1.0);
  EXPECT_NEAR(r.true_w2, w2, 1e-9);
  EXPECT_GE(r.kwon_bound, r.true_w2);
  EXPECT_LT(r.kwon_bound, 3 * r.true_w2);  // and not vacuous
  // Gaussian → Gaussian flows are affine in the noise: the coupling distance is W2 up to MC error.
  EXPECT_NEAR(r.su_coupling, r.true_w2, 0.1 * r.true_w2);
  // L_s is exact for the Gaussian network: −1/(σ² + 4).
  for (const auto& row : r.rows) EXPECT_NEAR(row.lipschitz_max, -1 / (row.sigma * row.sigma + 4), 1e-8);
}

TEST(WassersteinBound, DsmGivesALooserBound) {
  auto model = open_model("builtin:gaussian:shape=2,mean=0.2,std=0.8");
  eval::ExactTarget target("builtin:gaussian:shape=2", model->metadata());
  eval::WBoundOptions o;
  o.sigmas = eval::evaluation_sigmas(model->metadata().schedule, 12);
  o.num_images = 300;
  o.lipschitz_points = 2;
  o.iterations = 5;
  o.ode_samples = 0;
  o.dtype = torch::kFloat64;
  auto sm = eval::wasserstein_bound(model, target, o);
  o.use_dsm = true;
  auto dsm = eval::wasserstein_bound(model, target, o);
  EXPECT_GT(dsm.kwon_bound, sm.kwon_bound);
}
