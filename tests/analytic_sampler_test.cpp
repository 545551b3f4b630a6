// Analytic-DPM end to end on exact Gaussian oracles: Γ estimation over a dataset, the analytic
// samplers' variance, SN-DPM with an exact second-moment head, NLL ordering, Γ-file refusals.
#include <gtest/gtest.h>
#include <torch/script.h>

#include <cmath>

#include "scoreflow/analytic_dpm.h"
#include "scoreflow/builtin.h"
#include "scoreflow/error.h"
#include "scoreflow/gamma_estimation.h"
#include "scoreflow/nll.h"
#include "scoreflow/npy.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "tests/support/gaussian_oracle.h"

namespace sf = scoreflow;
namespace an = scoreflow;

namespace {

// Diagonal Gaussian data: std from 0.15 to 0.35 over 16 dims, mean 0.2; the matching builtin.
const std::string kModel = "builtin:gaussian:shape=1x4x4,mean=0.2,std_min=0.15,std_max=0.35,schedule=vp_discrete";

sf::testing::DiagonalGaussian oracle() {
  sf::testing::DiagonalGaussian g;
  for (int i = 0; i < 16; ++i) {
    g.mu.push_back(0.2);
    double s = 0.15 + 0.2 * i / 15.0;
    g.var.push_back(s * s);
  }
  return g;
}

torch::Tensor gaussian_data(int64_t n, uint64_t seed, bool quantize) {
  auto g = oracle();
  torch::manual_seed(seed);
  torch::Tensor x = g.mu_tensor() + g.var_tensor().sqrt() * torch::randn({n, 16}, torch::kFloat64);
  if (quantize) x = torch::round((x.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1;
  return x.reshape({n, 1, 4, 4}).to(torch::kFloat32);
}

std::string write_data(const std::string& name, const torch::Tensor& x) {
  std::string path = ::testing::TempDir() + "/" + name;
  sf::io::write_npy(path, sf::io::from_tensor(x));
  return path;
}

/// Γ* for every timestep, as a Γ file for `model`.
an::GammaTable exact_gamma(const sf::Model& model) {
  an::DiscreteChain chain = sf::chain_of(model);
  an::GammaTable table(sf::gamma_meta_for(model), chain.num_steps());
  auto g = oracle();
  for (int64_t t = 1; t <= chain.num_steps(); ++t)
    table.set(t, g.gamma_star(std::sqrt(chain.alpha_bar(t)), std::sqrt(chain.beta_bar(t))), 0.0, 1);
  return table;
}

torch::Tensor draw(const std::string& sampler, const std::string& args, std::shared_ptr<sf::Model> model,
                   const std::vector<double>& sigmas, int n) {
  sf::SampleJob job;
  job.sigmas = sigmas;
  for (int i = 0; i < n; ++i) job.seeds.push_back(i);
  job.batch = n;
  return sf::run_sampler(*sf::make_sampler(sampler, args), model, job).samples.to(torch::kFloat64).reshape({n, 16});
}

}  // namespace

TEST(GammaEstimation, MatchesTheExactGammaWithinItsStandardError) {
  auto model = sf::open_model(kModel);
  sf::io::DatasetOptions opts;
  auto data = sf::io::open_dataset(write_data("gamma_data.npy", gaussian_data(3000, 1, false)), opts);
  an::DiscreteChain chain = sf::chain_of(*model);
  sf::GammaEstimation job;
  job.timesteps = {1, 50, 200, 500, 800, 1000};
  job.num_images = 3000;
  job.batch = 500;
  an::GammaTable table(sf::gamma_meta_for(*model), chain.num_steps());
  sf::estimate_gamma(*model, *data, job, table);
  auto g = oracle();
  for (int64_t t : job.timesteps) {
    const double exact = g.gamma_star(std::sqrt(chain.alpha_bar(t)), std::sqrt(chain.beta_bar(t)));
    const an::GammaEntry& e = table.entry(t);
    EXPECT_GT(e.std_err, 0.0);
    EXPECT_LT(std::abs(e.gamma_raw - exact), 4 * e.std_err + 1e-9)
        << "t=" << t << " est " << e.gamma_raw << " exact " << exact;
    // Lemma 11: E tr Cov[x0|x_t]/d from Γ equals the closed-form posterior variance.
    const double cov = g.mean_posterior_var(std::sqrt(chain.alpha_bar(t)), std::sqrt(chain.beta_bar(t)));
    EXPECT_NEAR(an::cov_x0_from_gamma(chain, t, exact), cov, 1e-9 * cov);
  }
}

TEST(AnalyticSamplers, ExactGammaReproducesTheDataVarianceAtTenSteps) {
  auto model = sf::open_model(kModel);
  std::string gamma_path = ::testing::TempDir() + "/gamma_exact.json";
  exact_gamma(*model).save(gamma_path);
  an::DiscreteChain chain = sf::chain_of(*model);
  auto sigmas = sf::trajectory_sigmas(chain, sf::make_trajectory("even", chain, 10, nullptr));
  auto g = oracle();
  const double true_var = g.var_tensor().mean().item<double>();
  // With the exact Γ each step's p(x_s|x_t) equals q(x_s|x_t) for Gaussian data: the marginal
  // variance is exact (total-variance identity); DDPM's β̃ loses variance at 10 steps.
  for (const std::string sampler : {"analytic_ddpm", "analytic_ddim"}) {
    torch::Tensor x = draw(sampler, "sigma2_clip=0,gamma=" + gamma_path, model, sigmas, 4000);
    const double var = x.var(0).mean().item<double>();
    EXPECT_NEAR(var / true_var, 1.0, 0.05) << sampler;
  }
  torch::Tensor ddpm = draw("ddpm", "", model, sigmas, 4000);
  EXPECT_LT(ddpm.var(0).mean().item<double>() / true_var, 0.85);
}

TEST(AnalyticSamplers, SnDpmWithAnExactSecondMomentHeadIsExact) {
  // A TorchScript network that outputs the exact ε* and E[ε²|x_t] = ε*² + a²v/S of the diagonal
  // Gaussian, per element (head eps2).
  auto model = sf::open_model(kModel);
  an::DiscreteChain chain = sf::chain_of(*model);
  std::vector<double> abar;
  for (int64_t t = 1; t <= chain.num_steps(); ++t) abar.push_back(chain.alpha_bar(t));
  auto g = oracle();
  torch::jit::Module m("ExactHead");
  m.register_buffer("abar", torch::tensor(abar, torch::kFloat64));
  m.register_buffer("var", g.var_tensor().reshape({1, 1, 4, 4}));
  m.define(R"(
def forward(self, x_t, t):
    ab = self.abar[torch.round(t).long()].view(-1, 1, 1, 1)
    a = torch.sqrt(ab)
    b = torch.sqrt(1.0 - ab)
    s = a * a * self.var + b * b
    eps = b * (x_t.double() - a * 0.2) / s
    h = eps * eps + a * a * self.var / s
    return torch.cat([eps, h], 1).float()
)");
  std::string path = ::testing::TempDir() + "/exact_head.pt";
  m.save(path, {{"scoreflow.json", R"({"prediction":"eps","schedule":{"type":"vp_discrete"},"time_input":"index",
                                       "shape":[1,4,4],"head":"eps2"})"}});
  auto net = sf::open_model(path);
  auto sigmas = sf::trajectory_sigmas(chain, sf::make_trajectory("even", chain, 10, nullptr));
  torch::Tensor x = draw("sn_dpm", "sigma2_clip=0", net, sigmas, 4000);
  torch::Tensor ratio = x.var(0) / g.var_tensor();
  EXPECT_NEAR(ratio.mean().item<double>(), 1.0, 0.05);
  EXPECT_NEAR(x.mean(0).mean().item<double>(), 0.2, 0.01);
  EXPECT_THROW(draw("sn_dpm", "", model, sigmas, 2), sf::Error);  // builtin has no head
}

TEST(AnalyticNll, AnalyticVarianceBeatsBothDdpmVariancesAndOptimalBeatsEven) {
  auto model = sf::open_model(kModel);
  sf::io::DatasetOptions opts;
  auto data = sf::io::open_dataset(write_data("nll_data.npy", gaussian_data(400, 2, true)), opts);
  an::GammaTable gamma = exact_gamma(*model);
  an::DiscreteChain chain = sf::chain_of(*model);
  sf::NllJob job;
  job.num_images = 400;
  job.batch = 400;
  auto nll = [&](an::ReverseVariance v, const std::string& traj) {
    job.variance = v;
    job.trajectory = sf::make_trajectory(traj, chain, 10, &gamma);
    return sf::compute_nll(*model, *data, &gamma, job);
  };
  sf::NllResult analytic = nll(an::ReverseVariance::analytic, "even");
  sf::NllResult beta = nll(an::ReverseVariance::ddpm_beta, "even");
  sf::NllResult tilde = nll(an::ReverseVariance::ddpm_tilde, "even");
  sf::NllResult optimal = nll(an::ReverseVariance::analytic, "optimal");
  EXPECT_LT(analytic.bits_per_dim, beta.bits_per_dim);
  EXPECT_LT(analytic.bits_per_dim, tilde.bits_per_dim);
  EXPECT_LT(optimal.bits_per_dim, analytic.bits_per_dim + 2 * analytic.std_err);
  EXPECT_NEAR(analytic.prior + analytic.steps + analytic.decoder, analytic.bits_per_dim, 1e-9);
}

TEST(AnalyticSamplers, RefuseGammaFromAnotherModelAndContinuousGrids) {
  auto model = sf::open_model(kModel);
  auto other = sf::open_model("builtin:gaussian:shape=1x4x4,schedule=vp_discrete");
  std::string path = ::testing::TempDir() + "/gamma_other.json";
  exact_gamma(*other).save(path);
  an::DiscreteChain chain = sf::chain_of(*model);
  auto sigmas = sf::trajectory_sigmas(chain, sf::make_trajectory("even", chain, 5, nullptr));
  try {
    draw("analytic_ddpm", "gamma=" + path, model, sigmas, 2);
    FAIL();
  } catch (const sf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model"), std::string::npos) << e.what();
  }
  std::string ok = ::testing::TempDir() + "/gamma_ok.json";
  exact_gamma(*model).save(ok);
  EXPECT_THROW(draw("analytic_ddpm", "gamma=" + ok, model, {10.0, 3.3, 1.0, 0.0}, 2), sf::Error);  // not discrete σ
  EXPECT_THROW(sf::make_sampler("analytic_ddpm", ""), sf::Error);                                  // no gamma=
  EXPECT_THROW(sf::make_trajectory("even", chain, 2000, nullptr), sf::Error);                      // K > N
  EXPECT_THROW(sf::chain_of(*sf::open_model("builtin:gaussian")), sf::Error);                      // EDM schedule
}

TEST(AnalyticSamplers, CountOneNfePerStepAndDoNotDependOnBatchSize) {
  auto model = sf::open_model(kModel);
  std::string gamma_path = ::testing::TempDir() + "/gamma_exact_nfe.json";
  exact_gamma(*model).save(gamma_path);
  an::DiscreteChain chain = sf::chain_of(*model);
  for (const std::string name : {"analytic_ddpm", "analytic_ddim"}) {
    auto sampler = sf::make_sampler(name, "gamma=" + gamma_path);
    for (int k : {2, 5, 9}) {
      auto sigmas = sf::trajectory_sigmas(chain, sf::make_trajectory("quadratic", chain, k, nullptr));
      sf::Denoiser d(model);
      sf::NoiseSource noise({1, 2});
      sampler->sample(d, torch::randn({2, 1, 4, 4}) * sigmas[0], sigmas, noise);
      EXPECT_EQ(d.nfe(), sampler->nfe(k)) << name << " K=" << k;
      EXPECT_EQ(d.nfe(), k);
    }
    sf::SampleJob job;
    job.sigmas = sf::trajectory_sigmas(chain, sf::make_trajectory("even", chain, 6, nullptr));
    job.seeds = {4, 5, 6, 7, 8};
    job.batch = 5;
    torch::Tensor all = sf::run_sampler(*sampler, model, job).samples;
    job.batch = 2;
    EXPECT_TRUE(torch::equal(all, sf::run_sampler(*sampler, model, job).samples)) << name;
  }
}

TEST(AnalyticSamplers, AnalyticDdimWithoutNoiseOrClampIsDdim) {
  // Analytic-DDIM at η = 0 is DDIM's mean plus γ²·E Cov[x0|x_t] of noise (Bao et al. 2022, Thm 1 with
  // λ = 0); with that noise and the x̂0 clamp switched off it must be DDIM (σ-space Euler) exactly.
  auto model = sf::open_model(kModel);
  std::string gamma_path = ::testing::TempDir() + "/gamma_exact_ddim.json";
  exact_gamma(*model).save(gamma_path);
  an::DiscreteChain chain = sf::chain_of(*model);
  auto sigmas = sf::trajectory_sigmas(chain, sf::make_trajectory("even", chain, 10, nullptr));
  torch::Tensor ddim = draw("ddim", "", model, sigmas, 64);
  torch::Tensor means = draw("analytic_ddim", "gamma=" + gamma_path + ",noise=false,clip_x0=false", model, sigmas, 64);
  EXPECT_LT((ddim - means).abs().max().item<double>(), 1e-4);
  torch::Tensor noisy = draw("analytic_ddim", "gamma=" + gamma_path + ",clip_x0=false", model, sigmas, 64);
  EXPECT_GT((ddim - noisy).abs().max().item<double>(), 1e-2);  // the default adds noise
}

// --final none/denoise on a trajectory (docs/samplers.md "Final step"): `steps` steps along a K =
// steps + 1 trajectory that stop at σ(τ_1) (one call each), then for denoise D there (one more).
TEST(AnalyticSamplers, HonourEachFinalStepOnTrajectories) {
  auto model = sf::open_model(kModel);
  const std::string gamma_path = ::testing::TempDir() + "/gamma_exact_final.json";
  exact_gamma(*model).save(gamma_path);
  an::DiscreteChain chain = sf::chain_of(*model);
  for (const std::string name : {"analytic_ddpm", "analytic_ddim"}) {
    auto sampler = sf::make_sampler(name, "gamma=" + gamma_path);
    for (int steps : {1, 4}) {
      SCOPED_TRACE(name + " steps=" + std::to_string(steps));
      if (steps >= 2)  // a zero trajectory needs K >= 2; one step that stops at τ_1 needs K + 1 = 2
        EXPECT_EQ(sf::trajectory_grid("even", chain, steps, nullptr, sf::FinalStep::Zero),
                  sf::trajectory_sigmas(chain, sf::make_trajectory("even", chain, steps, nullptr)));
      const std::vector<int64_t> longer = sf::make_trajectory("even", chain, steps + 1, nullptr);
      const std::vector<double> none = sf::trajectory_grid("even", chain, steps, nullptr, sf::FinalStep::None);
      ASSERT_EQ(none.size(), size_t(steps) + 1);
      EXPECT_EQ(none.back(), chain.sigma(longer.front()));
      EXPECT_EQ(none.front(), chain.sigma(longer.back()));
      for (sf::FinalStep final : {sf::FinalStep::None, sf::FinalStep::Denoise}) {
        sf::SampleJob job;
        job.sigmas = none;
        job.final = final;
        job.seeds = {3, 4};
        sf::SampleResult r = sf::run_sampler(*sampler, model, job);
        EXPECT_EQ(r.nfe, steps + (final == sf::FinalStep::Denoise ? 1 : 0));
        EXPECT_EQ(r.nfe, sampler->nfe_for(steps, final));
        sf::NoiseSource noise(job.seeds);
        torch::Tensor x = noise.randn(model->metadata().shape) * none.front();
        torch::Tensor by_hand = sampler->sample(sf::Denoiser(model), x, none, noise);
        if (final == sf::FinalStep::Denoise) by_hand = sf::Denoiser(model)(by_hand, none.back());
        EXPECT_TRUE(torch::equal(r.samples, by_hand.to(torch::kFloat32)));
      }
    }
  }
  // A grid that stops at τ_1 ends with the step that produces x_{τ1}: its noise is capped at
  // (y·(2/255)·sqrt(π/2))², as the step before the step into 0 is on a zero grid. One step from
  // τ_2 = 501 to τ_1 = 1: the sample minus the noise-free mean is sqrt(min(var, cap))·z/sqrt(ᾱ_1).
  const std::vector<double> one = sf::trajectory_grid("even", chain, 1, nullptr, sf::FinalStep::None);
  ASSERT_EQ(one.size(), 2u);
  auto spread = [&](const std::string& args) {
    torch::Tensor noisy = draw("analytic_ddpm", "gamma=" + gamma_path + "," + args, model, one, 2000);
    torch::Tensor mean = draw("analytic_ddpm", "gamma=" + gamma_path + ",noise=false," + args, model, one, 2000);
    return (noisy - mean).std().item<double>() * std::sqrt(chain.alpha_bar(1));
  };
  const double y = 0.5, cap = y * (2.0 / 255.0) * std::sqrt(M_PI / 2);
  const double uncapped = spread("sigma2_clip=0");
  ASSERT_GT(uncapped, 2 * cap);  // so that the cap is what sets the spread below
  EXPECT_NEAR(spread("sigma2_clip=0.5"), cap, 0.03 * cap);
}
