#include "scoreflow/analytic_dpm.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <random>

#include "scoreflow/error.h"
#include "tests/support/error_text.h"
#include "tests/support/gaussian_oracle.h"

namespace sa = scoreflow;
using scoreflow::testing::DiagonalGaussian;

namespace {

/// DDPM's linear schedule β_n = 1e-4 .. 0.02 (Ho et al. 2020), N steps.
sa::DiscreteChain linear_chain(int64_t N) {
  std::vector<double> betas(N);
  for (int64_t n = 0; n < N; ++n) betas[n] = 1e-4 + (0.02 - 1e-4) * static_cast<double>(n) / static_cast<double>(N - 1);
  return sa::DiscreteChain::from_betas(betas);
}

double a_of(const sa::DiscreteChain& c, int64_t t) { return std::sqrt(c.alpha_bar(t)); }
double b_of(const sa::DiscreteChain& c, int64_t t) { return std::sqrt(c.beta_bar(t)); }

DiagonalGaussian some_diagonal_gaussian(int64_t d, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> mu(-0.5, 0.5), var(0.01, 0.3);
  DiagonalGaussian g;
  for (int64_t i = 0; i < d; ++i) {
    g.mu.push_back(mu(rng));
    g.var.push_back(var(rng));
  }
  return g;
}

using scoreflow::testing_support::error_of;

}  // namespace

// ---- chain and timesteps ----

TEST(AnalyticChain, SkipQuantitiesCompose) {
  const sa::DiscreteChain chain = linear_chain(1000);
  std::vector<double> abar;
  for (int64_t t = 1; t <= 1000; ++t) abar.push_back(chain.alpha_bar(t));
  const sa::DiscreteChain direct(abar);
  EXPECT_EQ(chain.alpha_bar(0), 1.0);
  EXPECT_EQ(chain.beta_bar(0), 0.0);
  EXPECT_NEAR(chain.beta_bar(1), 1e-4, 1e-18);
  for (int64_t t : {int64_t{2}, int64_t{10}, int64_t{500}, int64_t{1000}}) {
    EXPECT_NEAR(direct.beta_bar(t), chain.beta_bar(t), 1e-15);
    for (int64_t s : {int64_t{0}, int64_t{1}, t / 2, t - 1}) {
      EXPECT_NEAR(chain.alpha(t, s) * chain.alpha_bar(s), chain.alpha_bar(t), 1e-15);
      EXPECT_NEAR(chain.beta(t, s), 1.0 - chain.alpha(t, s), 1e-15);
      // β̃_{s|t} = β_{t|s}β̄_s/β̄_t is the variance of q(x_s|x_t, x0).
      EXPECT_NEAR(chain.beta_tilde(s, t), chain.beta(t, s) * chain.beta_bar(s) / chain.beta_bar(t), 1e-17);
    }
  }
  // One-step skip keeps its relative precision: β_{2|1} = β_2.
  EXPECT_NEAR(chain.beta(2, 1) / (1e-4 + (0.02 - 1e-4) / 999.0), 1.0, 1e-13);
  EXPECT_EQ(chain.model_index(1), 0);
  EXPECT_NEAR(chain.sigma(500), std::sqrt(chain.beta_bar(500) / chain.alpha_bar(500)), 1e-15);
  EXPECT_NE(error_of([&] { chain.alpha_bar(1001); }).find("outside [0, 1000]"), std::string::npos);
  EXPECT_NE(error_of([] { sa::DiscreteChain({0.9, 0.95}); }).find("decrease"), std::string::npos);
}

TEST(AnalyticTimesteps, EvenAndQuadraticContainEndsAndIncrease) {
  for (int64_t N : {2, 10, 37, 1000}) {
    for (int64_t K : {2, 3, 7, 10, 100, 999, 1000}) {
      if (K > N) continue;
      for (const auto& steps : {sa::even_timesteps(N, K), sa::quadratic_timesteps(N, K)}) {
        ASSERT_EQ(static_cast<int64_t>(steps.size()), K);
        EXPECT_EQ(steps.front(), 1);
        EXPECT_EQ(steps.back(), N);
        for (int64_t k = 1; k < K; ++k) ASSERT_LT(steps[k - 1], steps[k]) << N << " " << K;
      }
      const auto even = sa::even_timesteps(N, K);
      int64_t lo = N, hi = 0;
      for (int64_t k = 1; k < K; ++k) {
        lo = std::min(lo, even[k] - even[k - 1]);
        hi = std::max(hi, even[k] - even[k - 1]);
      }
      EXPECT_LE(hi - lo, 1) << "even gaps differ by more than one for N=" << N << " K=" << K;
    }
  }
  EXPECT_EQ(sa::even_timesteps(1000, 10), (std::vector<int64_t>{1, 112, 223, 334, 445, 556, 667, 778, 889, 1000}));
  // Dense near the data: the first gap is the smallest.
  const auto quad = sa::quadratic_timesteps(1000, 10);
  EXPECT_LT(quad[1] - quad[0], quad[9] - quad[8]);
  EXPECT_EQ(sa::timesteps_by_name("even", 10, 4), sa::even_timesteps(10, 4));
  EXPECT_NE(error_of([] { sa::timesteps_by_name("cubic", 10, 4); }).find("even, quadratic"), std::string::npos);
  EXPECT_NE(error_of([] { sa::even_timesteps(10, 11); }).find("exceeds"), std::string::npos);
  EXPECT_NE(error_of([] { sa::explicit_timesteps({1, 5, 5, 10}, 10); }).find("strictly"), std::string::npos);
  EXPECT_NE(error_of([] { sa::explicit_timesteps({2, 10}, 10); }).find("start at 1"), std::string::npos);
}

// ---- the λ² family ----

TEST(AnalyticFamily, MeanCoefficientsAgreeInBothForms) {
  const sa::DiscreteChain chain = linear_chain(1000);
  std::mt19937 rng(1);
  std::normal_distribution<double> n01;
  for (double eta : {0.0, 0.3, 1.0})
    for (auto [s, t] : {std::pair<int64_t, int64_t>{1, 2}, {0, 5}, {100, 400}, {999, 1000}}) {
      const sa::StepCoefficients c = sa::step_coefficients(chain, s, t, eta);
      const double x_t = n01(rng), eps = n01(rng);
      const double x0 = (x_t - b_of(chain, t) * eps) / a_of(chain, t);
      EXPECT_NEAR(c.c_x * x_t + c.c_eps * eps, c.coef_xt * x_t + c.gamma * x0, 1e-12);
      EXPECT_NEAR(c.lambda2, eta * eta * chain.beta_tilde(s, t), 1e-18);
    }
  // DDPM: the posterior mean coefficients of Ho et al. (2020), Eq. 7.
  const auto ddpm = sa::step_coefficients(chain, 300, 310, 1.0);
  EXPECT_NEAR(ddpm.gamma, a_of(chain, 300) * chain.beta(310, 300) / chain.beta_bar(310), 1e-14);
  EXPECT_NEAR(ddpm.coef_xt, std::sqrt(chain.alpha(310, 300)) * chain.beta_bar(300) / chain.beta_bar(310), 1e-14);
  // DDIM (η = 0) is Euler in σ-space: x_s/√ᾱ_s = x_t/√ᾱ_t + (σ_s − σ_t)·ε̂ (docs/design.md §2).
  const auto ddim = sa::step_coefficients(chain, 300, 700, 0.0);
  EXPECT_NEAR(ddim.c_x / a_of(chain, 300), 1.0 / a_of(chain, 700), 1e-13);
  EXPECT_NEAR(ddim.c_eps / a_of(chain, 300), chain.sigma(300) - chain.sigma(700), 1e-12);
}

TEST(AnalyticVariance, BoundsAndClipping) {
  const sa::DiscreteChain chain = linear_chain(1000);
  const sa::DataRange range;
  for (double eta : {0.0, 1.0})
    for (auto [s, t] : {std::pair<int64_t, int64_t>{1, 2}, {10, 300}, {500, 1000}}) {
      const sa::VarianceBounds bounds = sa::variance_bounds(chain, s, t, eta, range);
      EXPECT_DOUBLE_EQ(sa::analytic_variance(chain, s, t, 1.0, eta), bounds.lower);
      EXPECT_DOUBLE_EQ(sa::analytic_variance(chain, s, t, 1.7, eta), bounds.lower);  // Γ > 1
      EXPECT_DOUBLE_EQ(sa::analytic_variance(chain, s, t, -3.0, eta), bounds.upper);
      EXPECT_DOUBLE_EQ(sa::analytic_variance(chain, s, t, 0.0, eta), bounds.upper);
      const double mid = sa::analytic_variance(chain, s, t, 0.999, eta);
      EXPECT_GE(mid, bounds.lower);
      EXPECT_LE(mid, bounds.upper);
    }
  // Near t = N, β̄/ᾱ ≫ 1, so the data-range bound ((b − a)/2)² = 1 is the binding one.
  const auto c = sa::step_coefficients(chain, 900, 1000, 1.0);
  EXPECT_NEAR(sa::variance_bounds(chain, 900, 1000, 1.0).upper, c.lambda2 + c.gamma * c.gamma, 1e-15);
  EXPECT_GT(sa::analytic_variance(chain, 900, 1000, 0.0, 1.0, range, /*clip=*/false),
            sa::variance_bounds(chain, 900, 1000, 1.0).upper);
  EXPECT_NEAR(sa::sigma2_clip_threshold(2.0), std::pow(4.0 / 255.0, 2) * M_PI / 2.0, 1e-18);
}

// ---- exact oracles: Gaussian data ----

TEST(AnalyticGaussian, LemmaElevenTwoExpressionsAgree) {
  // E tr Cov[x0|x_t]/d via Γ*, and via Cov = Σ − a²ΣS⁻¹Σ for a full (non-diagonal) Σ.
  const sa::DiscreteChain chain = linear_chain(1000);
  std::mt19937 rng(3);
  std::normal_distribution<double> n01;
  const int64_t d = 6;
  Eigen::MatrixXd w(d, d);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) w(i, j) = 0.3 * n01(rng);
  const Eigen::MatrixXd sigma = w * w.transpose() + 0.05 * Eigen::MatrixXd::Identity(d, d);
  for (int64_t t : {1, 3, 50, 400, 1000}) {
    const double a = a_of(chain, t), b = b_of(chain, t);
    const double gamma = scoreflow::testing::gamma_star_full(sigma, a, b);
    EXPECT_GT(gamma, 0.0);
    EXPECT_LT(gamma, 1.0);
    const double via_gamma = sa::cov_x0_from_gamma(chain, t, gamma);
    const double via_cov = scoreflow::testing::posterior_cov_full(sigma, a, b).trace() / d;
    EXPECT_NEAR(via_gamma / via_cov, 1.0, 1e-9) << "t=" << t;
  }
}

TEST(AnalyticGaussian, TotalVarianceIdentityWithExactGamma) {
  // For Gaussian data and the exact mean E[x0|x_t], Var q(x_s) = E Var(x_s|x_t) + Var E[x_s|x_t]
  // (summed over dimensions): d·σ*² + Σ_i Var(mean_i) = Σ_i (ᾱ_s v_i + β̄_s), any η.
  const sa::DiscreteChain chain = linear_chain(1000);
  const sa::DataRange wide{-100.0, 100.0};  // the oracle is not bounded: keep the clip inactive
  for (const DiagonalGaussian& data :
       {DiagonalGaussian{{0.1, 0.1, 0.1}, {0.2, 0.2, 0.2}}, some_diagonal_gaussian(8, 5)}) {
    const int64_t d = data.dim();
    for (double eta : {0.0, 0.5, 1.0})
      for (auto [s, t] : {std::pair<int64_t, int64_t>{1, 2}, {20, 80}, {100, 900}, {999, 1000}}) {
        const double a = a_of(chain, t), b = b_of(chain, t);
        const double sigma2 = sa::analytic_variance(chain, s, t, data.gamma_star(a, b), eta, wide, false);
        const sa::StepCoefficients c = sa::step_coefficients(chain, s, t, eta);
        double total = d * sigma2, target = 0.0;
        for (int64_t i = 0; i < d; ++i) {
          // mean_i = coef_xt·x_t,i + γ·E[x0,i|x_t] = (coef_xt + γ·a v_i/S_i)·x_t,i + const.
          const double k = c.coef_xt + c.gamma * a * data.var[i] / data.marginal_var(i, a, b);
          total += k * k * data.marginal_var(i, a, b);
          target += chain.alpha_bar(s) * data.var[i] + chain.beta_bar(s);
        }
        EXPECT_NEAR(total / target, 1.0, 1e-10) << "eta=" << eta << " s=" << s << " t=" << t;
      }
  }
}

TEST(AnalyticGaussian, AnalyticDdpmVarianceIsTheTrueConditionalVariance) {
  // Markov chain (η = 1): Var q(x_s|x_t) by conditioning the joint Gaussian of (x_s, x_t),
  // Var x_s − α_{t|s}(Var x_s)²/Var x_t, averaged over dimensions, equals σ*² with Γ*.
  const sa::DiscreteChain chain = linear_chain(1000);
  const sa::DataRange wide{-100.0, 100.0};
  const DiagonalGaussian data = some_diagonal_gaussian(5, 7);
  for (auto [s, t] : {std::pair<int64_t, int64_t>{1, 2}, {1, 10}, {250, 260}, {300, 1000}}) {
    const double a = a_of(chain, t), b = b_of(chain, t);
    double mean_conditional = 0.0;
    for (int64_t i = 0; i < data.dim(); ++i) {
      const double var_s = data.marginal_var(i, a_of(chain, s), b_of(chain, s));
      const double var_t = data.marginal_var(i, a, b);
      mean_conditional += var_s - chain.alpha(t, s) * var_s * var_s / var_t;
    }
    mean_conditional /= data.dim();
    const double sigma2 = sa::analytic_variance(chain, s, t, data.gamma_star(a, b), 1.0, wide);
    EXPECT_NEAR(sigma2 / mean_conditional, 1.0, 1e-9) << "s=" << s << " t=" << t;
  }
}

TEST(AnalyticGaussian, SnAndNprDpmAreExactPerElement) {
  // Exact heads: h = ε*² + Var[ε|x_t], g = Var[ε|x_t]; per-element variance = Var q(x_s|x_t)_i.
  const sa::DiscreteChain chain = linear_chain(1000);
  const sa::DataRange wide{-100.0, 100.0};
  const DiagonalGaussian data = some_diagonal_gaussian(4, 11);
  const int64_t s = 200, t = 260;
  const double a = a_of(chain, t), b = b_of(chain, t);
  const torch::Tensor x_t = torch::randn({3, data.dim()}, torch::kFloat64);
  const torch::Tensor eps_hat = data.eps(x_t, a, b);
  std::vector<double> eps_var;
  for (int64_t i = 0; i < data.dim(); ++i) eps_var.push_back(data.eps_posterior_var(i, a, b));
  const torch::Tensor g = torch::tensor(eps_var, torch::kFloat64).expand_as(x_t);
  const torch::Tensor sn = sa::sn_dpm_variance(chain, s, t, eps_hat * eps_hat + g, eps_hat, 1.0, wide);
  const torch::Tensor npr = sa::npr_dpm_variance(chain, s, t, g, 1.0, wide);
  for (int64_t i = 0; i < data.dim(); ++i) {
    const double var_s = data.marginal_var(i, a_of(chain, s), b_of(chain, s));
    const double truth = var_s - chain.alpha(t, s) * var_s * var_s / data.marginal_var(i, a, b);
    for (int64_t n = 0; n < 3; ++n) {
      EXPECT_NEAR(sn[n][i].item<double>() / truth, 1.0, 1e-9);
      EXPECT_NEAR(npr[n][i].item<double>() / truth, 1.0, 1e-9);
    }
  }
}

TEST(AnalyticGaussian, AnalyticVarianceHasTheSmallestExpectedKl) {
  // Exact network, Gaussian data: Σ over a K-step trajectory of E KL(q(x_s|x_t,x0) ‖ p(x_s|x_t)),
  // with E(x0 − x̂0)² = mean Cov[x0|x_t]; analytic < β̃ and < β; and it is a stationary minimum.
  const sa::DiscreteChain chain = linear_chain(1000);
  const sa::DataRange wide{-100.0, 100.0};
  const DiagonalGaussian data = some_diagonal_gaussian(16, 13);
  for (int64_t K : {2, 10, 100}) {
    const auto traj = sa::even_timesteps(1000, K);
    double kl_analytic = 0.0, kl_tilde = 0.0, kl_beta = 0.0, kl_up = 0.0, kl_down = 0.0;
    for (int64_t k = 1; k < K; ++k) {
      const int64_t s = traj[k - 1], t = traj[k];
      const double a = a_of(chain, t), b = b_of(chain, t);
      const double mse = data.mean_posterior_var(a, b);
      const double v = sa::analytic_variance(chain, s, t, data.gamma_star(a, b), 1.0, wide);
      kl_analytic += sa::expected_step_kl(chain, s, t, v, mse);
      kl_up += sa::expected_step_kl(chain, s, t, v * 1.01, mse);
      kl_down += sa::expected_step_kl(chain, s, t, v * 0.99, mse);
      kl_tilde += sa::expected_step_kl(chain, s, t, chain.beta_tilde(s, t), mse);
      kl_beta += sa::expected_step_kl(chain, s, t, chain.beta(t, s), mse);
    }
    EXPECT_LT(kl_analytic, kl_tilde) << "K=" << K;
    EXPECT_LT(kl_analytic, kl_beta) << "K=" << K;
    EXPECT_LT(kl_analytic, kl_up);
    EXPECT_LT(kl_analytic, kl_down);
  }
}

// ---- NLL pieces ----

TEST(AnalyticNll, KlTermsMatchTheirDefinitions) {
  const sa::DiscreteChain chain = linear_chain(1000);
  EXPECT_NEAR(sa::gaussian_kl(0.3, 0.5, -0.1, 2.0), 0.5 * (std::log(2.0 / 0.5) + (0.5 + 0.16) / 2.0 - 1.0), 1e-15);
  EXPECT_NEAR(sa::gaussian_kl(0.0, 1.0 + 1e-9, 0.0, 1.0), 0.25e-18, 1e-24);  // no cancellation
  const torch::Tensor x0 = torch::linspace(-1, 1, 7, torch::kFloat64).reshape({1, 7});
  const torch::Tensor prior = sa::prior_kl(chain, x0);
  const double abar = chain.alpha_bar(1000);
  for (int64_t i = 0; i < 7; ++i) {
    const double x = x0[0][i].item<double>();
    EXPECT_NEAR(prior[0][i].item<double>(), sa::gaussian_kl(std::sqrt(abar) * x, chain.beta_bar(1000), 0.0, 1.0),
                1e-17);
  }
  // Step KL against the KL of the two Gaussians written out with x_t.
  const int64_t s = 40, t = 90;
  const torch::Tensor x_t = torch::randn({1, 7}, torch::kFloat64);
  const torch::Tensor x0_hat = x0 + 0.1 * torch::randn({1, 7}, torch::kFloat64);
  const auto c = sa::step_coefficients(chain, s, t, 1.0);
  const double sigma2 = 2.0 * chain.beta_tilde(s, t);
  const torch::Tensor expect =
      sa::gaussian_kl(c.coef_xt * x_t + c.gamma * x0, torch::full_like(x0, chain.beta_tilde(s, t)),
                      c.coef_xt * x_t + c.gamma * x0_hat, torch::full_like(x0, sigma2));
  EXPECT_TRUE(torch::allclose(sa::step_kl(chain, s, t, x0, x0_hat, sigma2), expect, 1e-12, 1e-15));
  EXPECT_NEAR(sa::bits_per_dim(torch::full({2, 3, 4}, M_LN2, torch::kFloat64))[1].item<double>(), 1.0, 1e-15);
  EXPECT_EQ(sa::parse_reverse_variance("ddpm-tilde"), sa::ReverseVariance::ddpm_tilde);
  EXPECT_NE(error_of([] { sa::parse_reverse_variance("large"); }).find("analytic, ddpm-beta, ddpm-tilde"),
            std::string::npos);
  EXPECT_NEAR(sa::decoder_variance(chain), chain.beta_tilde(1, 2), 0.0);
}

TEST(AnalyticNll, DiscretizedGaussianSumsToOneOverTheBins) {
  const torch::Tensor bins = torch::linspace(-1, 1, 256, torch::kFloat64);  // x = −1 + 2i/255
  for (double mean : {-1.3, -0.4, 0.0, 0.77, 1.0})
    for (double std : {1e-4, 3e-3, 0.05, 0.5, 4.0, 300.0}) {
      const torch::Tensor logp = sa::discretized_gaussian_log_likelihood(bins, torch::full_like(bins, mean),
                                                                         torch::full_like(bins, std * std));
      ASSERT_TRUE(torch::isfinite(logp).all().item<bool>()) << mean << " " << std;
      EXPECT_NEAR(logp.exp().sum().item<double>(), 1.0, 1e-9) << mean << " " << std;
    }
}

TEST(AnalyticNll, DiscretizedGaussianMatchesCdfDifference) {
  // Interior bins: log(Φ(u) − Φ(l)) written out in long double, also deep in the tails.
  const auto phi_c = [](long double z) { return 0.5L * std::erfc(z / std::sqrt(2.0L)); };
  for (double x : {-0.5, -2.0 / 255.0, 0.0, 0.3, 251.0 / 255.0})
    for (double mean : {-0.9, 0.01, 0.6})
      for (double std : {0.01, 0.2, 1.5}) {
        const long double u = (x - mean + 1.0 / 255.0) / std, l = (x - mean - 1.0 / 255.0) / std;
        const long double direct = l > 0 ? phi_c(l) - phi_c(u) : phi_c(-u) - phi_c(-l);
        const double got = sa::discretized_gaussian_log_likelihood(torch::tensor({x}, torch::kFloat64),
                                                                   torch::tensor({mean}, torch::kFloat64),
                                                                   torch::tensor({std * std}, torch::kFloat64))[0]
                               .item<double>();
        // Past z ≈ 150 even long double underflows: use the asymptotic series of log Φc(z)
        // (the upper bin edge's mass is e^{−z·Δz} smaller and drops out).
        const long double z = l > 0 ? l : -u;
        const double expected =
            direct > 0 ? static_cast<double>(std::log(direct))
                       : static_cast<double>(-z * z / 2 - std::log(z * std::sqrt(2 * M_PIl)) +
                                             std::log1p(-1 / (z * z) + 3 / std::pow(z, 4) - 15 / std::pow(z, 6)));
        EXPECT_NEAR(got, expected, 1e-9 * std::abs(got) + 1e-12) << x << " " << mean << " " << std;
      }
  // Edge bins reach to infinity.
  const double edge = sa::discretized_gaussian_log_likelihood(torch::tensor({1.0}, torch::kFloat64),
                                                              torch::tensor({1.0}, torch::kFloat64),
                                                              torch::tensor({0.25}, torch::kFloat64))[0]
                          .item<double>();
  EXPECT_NEAR(edge, std::log(0.5 * std::erfc(-(1.0 / 255.0) / 0.5 / std::sqrt(2.0))), 1e-14);
}
