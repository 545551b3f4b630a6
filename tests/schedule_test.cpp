#include "scoreflow/schedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "scoreflow/error.h"
#include "scoreflow/sigmas.h"

using namespace scoreflow;

namespace {

std::vector<NoiseSchedule> all_schedules() {
  return {NoiseSchedule::vp_discrete("linear", 1e-4, 0.02, 1000),
          NoiseSchedule::vp_discrete("scaled_linear", 0.00085, 0.012, 1000),
          NoiseSchedule::vp_discrete("cosine", 0, 0, 1000),
          NoiseSchedule::vp_discrete("linear", 1e-4, 0.02, 1000, true),
          NoiseSchedule::vp_linear(0.1, 20.0),
          NoiseSchedule::ve(0.01, 50),
          NoiseSchedule::edm(0.002, 80),
          NoiseSchedule::flow()};
}

}  // namespace

TEST(Schedule, SigmaIsSOverAlphaAndLambdaIsMinusLogSigma) {
  for (const NoiseSchedule& s : all_schedules()) {
    for (int k = 0; k <= 20; ++k) {
      double t = s.t_min() + (s.t_max() - s.t_min()) * k / 20.0;
      EXPECT_NEAR(s.sigma(t), s.s(t) / s.alpha(t), 1e-12 * (1 + s.sigma(t))) << s.describe() << " t=" << t;
      EXPECT_NEAR(s.lambda(t), -std::log(s.sigma(t)), 1e-12) << s.describe();
      EXPECT_NEAR(s.alpha_of_sigma(s.sigma(t)), s.alpha(t), 1e-12) << s.describe();
    }
  }
}

TEST(Schedule, VpSchedulesPreserveVariance) {
  for (const NoiseSchedule& s : all_schedules()) {
    if (s.type() != ScheduleType::VpDiscrete && s.type() != ScheduleType::VpLinear) continue;
    for (int k = 0; k <= 10; ++k) {
      double t = s.t_min() + (s.t_max() - s.t_min()) * k / 10.0;
      EXPECT_NEAR(s.alpha(t) * s.alpha(t) + s.s(t) * s.s(t), 1.0, 1e-12) << s.describe();
    }
  }
}

TEST(Schedule, InverseTimeRoundTrips) {
  for (const NoiseSchedule& s : all_schedules()) {
    for (int k = 0; k <= 40; ++k) {
      double t = s.t_min() + (s.t_max() - s.t_min()) * k / 40.0;
      EXPECT_NEAR(s.t_of_sigma(s.sigma(t)), t, 1e-9 * (1 + std::abs(t))) << s.describe() << " t=" << t;
    }
  }
}

TEST(Schedule, SigmaIsIncreasingInTime) {
  for (const NoiseSchedule& s : all_schedules()) {
    double prev = 0;
    for (int k = 0; k <= 100; ++k) {
      double sig = s.sigma(s.t_min() + (s.t_max() - s.t_min()) * k / 100.0);
      EXPECT_GT(sig, prev) << s.describe();
      prev = sig;
    }
  }
}

TEST(Schedule, LinearDiscreteMatchesHandComputedAlphaBar) {
  // ᾱ_0 = 1 − 1e-4; ᾱ_1 = (1 − 1e-4)(1 − β_1), β_1 = 1e-4 + (0.02 − 1e-4)/999.
  NoiseSchedule s = NoiseSchedule::vp_discrete("linear", 1e-4, 0.02, 1000);
  double b1 = 1e-4 + (0.02 - 1e-4) / 999.0;
  EXPECT_NEAR(s.alphas_cumprod()[0], 1 - 1e-4, 1e-15);
  EXPECT_NEAR(s.alphas_cumprod()[1], (1 - 1e-4) * (1 - b1), 1e-15);
  double prod = 1;
  for (int i = 0; i < 1000; ++i) prod *= 1 - (1e-4 + (0.02 - 1e-4) * i / 999.0);
  EXPECT_NEAR(s.alphas_cumprod()[999], prod, 1e-12);
  EXPECT_NEAR(s.sigma(999), std::sqrt((1 - prod) / prod), 1e-6);
  EXPECT_NEAR(s.sigma(0), std::sqrt(1e-4 / (1 - 1e-4)), 1e-12);
}

TEST(Schedule, CosineMatchesNicholDhariwal) {
  NoiseSchedule s = NoiseSchedule::vp_discrete("cosine", 0, 0, 1000);
  auto f = [](double t) { return std::pow(std::cos((t / 1000 + 0.008) / 1.008 * M_PI / 2), 2); };
  // Away from the 0.999 beta clip, ᾱ_n = f(n+1)/f(0).
  for (int n : {0, 10, 500, 900}) EXPECT_NEAR(s.alphas_cumprod()[n], f(n + 1) / f(0), 1e-12) << n;
}

TEST(Schedule, VpLinearMatchesClosedForm) {
  NoiseSchedule s = NoiseSchedule::vp_linear(0.1, 20);
  double t = 0.5;
  double log_alpha = -0.25 * t * t * (20 - 0.1) - 0.5 * t * 0.1;
  EXPECT_NEAR(s.alpha(t), std::exp(log_alpha), 1e-14);
  EXPECT_NEAR(s.sigma(1e-3), std::sqrt(std::expm1(0.1 * 1e-3 + 0.5 * 19.9 * 1e-6)), 1e-15);
}

TEST(Schedule, ZeroTerminalSnrRescaleKeepsFirstAndZeroesLast) {
  NoiseSchedule plain = NoiseSchedule::vp_discrete("scaled_linear", 0.00085, 0.012, 1000);
  NoiseSchedule z = NoiseSchedule::vp_discrete("scaled_linear", 0.00085, 0.012, 1000, true);
  EXPECT_NEAR(z.alphas_cumprod()[0], plain.alphas_cumprod()[0], 1e-12);
  EXPECT_LT(z.alphas_cumprod()[999], 1e-7);
  EXPECT_GT(z.sigma_max(), 1000.0);
}

TEST(Schedule, RejectsBadParameters) {
  EXPECT_THROW(NoiseSchedule::vp_discrete("bogus", 1e-4, 0.02, 1000), Error);
  EXPECT_THROW(NoiseSchedule::vp_discrete(std::vector<double>{0.1, 1.5}), Error);
  EXPECT_THROW(NoiseSchedule::edm(1.0, 0.5), Error);
  EXPECT_THROW(NoiseSchedule::ve(-1, 5), Error);
}

TEST(Sigmas, KarrasEndpointsAndSpacing) {
  auto s = karras_sigmas(10, 0.002, 80, 7);
  EXPECT_NEAR(s.front(), 80, 1e-12);
  EXPECT_NEAR(s.back(), 0.002, 1e-15);
  // Equal steps in σ^{1/ρ}.
  double step = std::pow(s[1], 1 / 7.0) - std::pow(s[0], 1 / 7.0);
  for (int i = 1; i < 10; ++i) EXPECT_NEAR(std::pow(s[i], 1 / 7.0) - std::pow(s[i - 1], 1 / 7.0), step, 1e-12);
}

TEST(Sigmas, LogSnrIsUniformInLambda) {
  auto s = logsnr_sigmas(8, 0.01, 100);
  for (int i = 1; i < 8; ++i) EXPECT_NEAR(std::log(s[i - 1] / s[i]), std::log(1e4) / 7, 1e-12);
}

TEST(Sigmas, MakeSigmasAppendsZeroAndHonoursArgs) {
  NoiseSchedule edm = NoiseSchedule::edm();
  auto s = make_sigmas("karras", 5, edm, KeyValueArgs("rho=3,sigma_max=10"));
  ASSERT_EQ(s.size(), 6u);
  EXPECT_EQ(s.back(), 0.0);
  EXPECT_NEAR(s.front(), 10, 1e-12);
  auto t = make_sigmas("time_uniform", 4, NoiseSchedule::vp_linear(), KeyValueArgs(""));
  EXPECT_NEAR(t.front(), NoiseSchedule::vp_linear().sigma(1.0), 1e-12);
  EXPECT_NEAR(t[3], NoiseSchedule::vp_linear().sigma(1e-3), 1e-12);
}

TEST(Sigmas, VpTimeUniformIsTimeUniformOfTheFittedVpSchedule) {
  // On a vp_linear model (0.1, 20, t_eps = 1e-3) the fitted VP time is the model's own: the grid is
  // its time_uniform grid, and t(σ) inverts the schedule's σ(t).
  NoiseSchedule vp = NoiseSchedule::vp_linear();
  VpTime fit = VpTime::fit(vp.sigma_min(), vp.sigma_max());
  EXPECT_NEAR(fit.beta_min, 0.1, 1e-9);
  EXPECT_NEAR(fit.beta_d, 19.9, 1e-9);
  auto a = make_sigmas("vp_time_uniform", 6, vp, KeyValueArgs("rho=2")),
       b = make_sigmas("time_uniform", 6, vp, KeyValueArgs("rho=2"));
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-9 * b[i]) << i;
  for (double t : {1e-3, 0.02, 0.5, 1.0}) EXPECT_NEAR(fit.t(vp.sigma(t)), t, 1e-12);
  EXPECT_EQ(fit.t(0.0), 0.0);
  // EDM's range gives the AMED authors' constants (β_min < 0: σ = 0 at t = −2β_min/β_d > 0), and
  // the grid runs from σ_max to σ_min, uniform in that t.
  VpTime edm = VpTime::fit(0.002, 80);
  EXPECT_LT(edm.beta_min, 0);
  EXPECT_NEAR(edm.t(0.0), -2 * edm.beta_min / edm.beta_d, 1e-15);
  auto s = make_sigmas("vp_time_uniform", 4, NoiseSchedule::edm(), KeyValueArgs(""));
  EXPECT_NEAR(s[0], 80, 1e-10);
  EXPECT_NEAR(s[3], 0.002, 1e-12);
  EXPECT_NEAR(edm.t(s[1]) - edm.t(s[2]), edm.t(s[2]) - edm.t(s[3]), 1e-12);
  EXPECT_THROW(VpTime::fit(1, 1.5), Error);
}

TEST(Sigmas, DiscreteSpacingsMatchDiffusers) {
  // Values worked out by hand from the diffusers/DDIM definitions for N = 1000, 10 steps.
  EXPECT_EQ(discrete_timesteps("leading", 10, 1000),
            (std::vector<int>{900, 800, 700, 600, 500, 400, 300, 200, 100, 0}));
  EXPECT_EQ(discrete_timesteps("trailing", 10, 1000),
            (std::vector<int>{999, 899, 799, 699, 599, 499, 399, 299, 199, 99}));
  EXPECT_EQ(discrete_timesteps("linspace", 4, 1000), (std::vector<int>{999, 666, 333, 0}));
  EXPECT_EQ(discrete_timesteps("quadratic", 3, 1000), (std::vector<int>{800, 200, 0}));
  NoiseSchedule vp = NoiseSchedule::vp_discrete("linear", 1e-4, 0.02, 1000);
  auto s = make_sigmas("trailing", 10, vp, KeyValueArgs(""));
  EXPECT_DOUBLE_EQ(s[0], vp.discrete_sigmas()[999]);
  EXPECT_THROW(make_sigmas("trailing", 10, NoiseSchedule::edm(), KeyValueArgs("")), Error);
}

TEST(Sigmas, RejectsBadInput) {
  NoiseSchedule edm = NoiseSchedule::edm();
  EXPECT_THROW(make_sigmas("karras", 0, edm, KeyValueArgs("")), Error);
  EXPECT_THROW(make_sigmas("karras", 1000000, edm, KeyValueArgs("")), Error);
  EXPECT_THROW(make_sigmas("nope", 5, edm, KeyValueArgs("")), Error);
  EXPECT_THROW(make_sigmas("karras", 5, edm, KeyValueArgs("rhoo=3")), Error);
  EXPECT_THROW(explicit_sigmas({80, 90, 1}), Error);
  EXPECT_EQ(explicit_sigmas({80, 40, 1}).back(), 0.0);
  try {
    make_sigmas("nope", 5, edm, KeyValueArgs(""));
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("karras"), std::string::npos) << "lists valid names";
  }
}
