// Every registered sampler: declared order on the exact Gaussian PF-ODE, NFE count, sample
// distribution, determinism across batch sizes. Adding a sampler = one line in kSamplerCases.
#include <gtest/gtest.h>

#include <set>

#include "scoreflow/builtin.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "scoreflow/sigmas.h"
#include "tests/support/oracles.h"

using namespace scoreflow;

namespace {

struct SamplerCase {
  const char* name;
  const char* args;
  int order;          // declared ODE order (0: stochastic, no ODE order test)
  bool deterministic; // ODE sampler: converges pathwise to the PF-ODE solution
};

// The test list: one line per sampler configuration.
const SamplerCase kSamplerCases[] = {
    {"euler", "", 1, true},
    {"heun", "", 2, true},
    {"heun", "s_churn=10", 0, false},
    {"ddim", "", 1, true},
    {"ddim", "eta=1", 0, false},
    {"ddpm", "", 0, false},
    {"ddpm", "variance=beta", 0, false},
    {"euler_maruyama", "", 0, false},
    // Discrete-chain samplers need a vp_discrete model and a Γ file or a head: their order, NFE,
    // distribution and determinism checks live in analytic_sampler_test.cpp.
    {"analytic_ddpm", nullptr, 0, false},
    {"analytic_ddim", nullptr, 0, false},
    {"sn_dpm", nullptr, 0, false},
    {"npr_dpm", nullptr, 0, false},
    {"amed", "r=0.5", 2, true},
    {"amed", "r=0.3,c=1,a=1", 1, true},
    {"amed_plugin", "base=euler,r=0.5", 1, true},
    {"amed_plugin", "base=ipndm,r=0.5", 2, true},
    {"amed_plugin", "base=dpmpp_2m,r=0.5", 2, true},
};

void PrintTo(const SamplerCase& c, std::ostream* os) { *os << c.name << "(" << (c.args ? c.args : "") << ")"; }

std::string case_name(const ::testing::TestParamInfo<SamplerCase>& info) {
  const char* args = info.param.args ? info.param.args : "";
  std::string n = std::string(info.param.name) + (args[0] ? std::string("_") + args : "");
  for (char& c : n)
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

constexpr double kMu = 0.3, kStd = 0.5;

std::shared_ptr<GaussianMixtureModel> gaussian(const std::string& shape = "4") {
  return make_builtin("builtin:gaussian:shape=" + shape + ",mean=0.3,std=0.5");
}

class SamplerTest : public ::testing::TestWithParam<SamplerCase> {
 protected:
  void SetUp() override {
    if (!GetParam().args) GTEST_SKIP() << GetParam().name << " is tested in analytic_sampler_test.cpp";
  }
  std::unique_ptr<Sampler> sampler() const { return make_sampler(GetParam().name, GetParam().args); }
};

}  // namespace

TEST(SamplerRegistry, EveryRegisteredSamplerIsInTheTestList) {
  std::set<std::string> listed;
  for (const SamplerCase& c : kSamplerCases) listed.insert(c.name);
  for (const SamplerInfo& info : sampler_table()) EXPECT_TRUE(listed.count(info.name)) << info.name << " has no test line";
}

TEST(SamplerRegistry, UnknownNameAndArgsListTheValidOnes) {
  try {
    make_sampler("eulerr");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("heun"), std::string::npos) << e.what();
  }
  try {
    make_sampler("ddim", "etaa=1");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("valid: eta"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_sampler("ddim", "eta=2"), Error);
}

TEST_P(SamplerTest, CountsExactlyTheDocumentedNfe) {
  auto s = sampler();
  auto model = gaussian();
  for (int steps : {1, 2, 5, 9}) {
    if (steps < s->min_steps()) continue;
    auto sigmas = make_sigmas("karras", steps, model->metadata().schedule, KeyValueArgs(""));
    Denoiser d(model);
    NoiseSource noise({1, 2});
    s->sample(d, torch::randn({2, 4}, torch::kFloat64) * sigmas[0], sigmas, noise);
    EXPECT_EQ(d.nfe(), s->nfe(steps)) << steps << " steps";
  }
  // --nfe picks the most steps that fit the budget.
  int steps = s->steps_for_nfe(9);
  EXPECT_LE(s->nfe(steps), 9);
  EXPECT_GT(s->nfe(steps + 1), 9);
}

TEST_P(SamplerTest, ConvergesWithTheDeclaredOrderOnTheExactGaussianOde) {
  const SamplerCase& c = GetParam();
  if (!c.deterministic) GTEST_SKIP() << "stochastic: checked by distribution instead";
  auto s = sampler();
  auto model = gaussian();
  torch::Tensor eps = NoiseSource({7, 8, 9}).randn({4}).to(torch::kFloat64);
  std::vector<double> steps_list{8, 16, 32, 64}, errors;
  for (double steps : steps_list) {
    auto sigmas = make_sigmas("karras", static_cast<int>(steps), model->metadata().schedule, KeyValueArgs("sigma_max=20"));
    Denoiser d(model);
    NoiseSource noise({7, 8, 9});
    torch::Tensor x = s->sample(d, eps * sigmas[0], sigmas, noise);
    torch::Tensor exact = oracle::gaussian_ode_solution(eps * sigmas[0], kMu, kStd, sigmas[0], 0.0);
    errors.push_back((x - exact).abs().max().item<double>());
  }
  double slope = -oracle::fitted_slope(steps_list, errors);
  EXPECT_NEAR(slope, c.order, 0.3) << "errors " << errors[0] << " .. " << errors.back();
  EXPECT_EQ(s->order(), c.order);
}

TEST_P(SamplerTest, LandsOnTheRightDistribution) {
  auto s = sampler();
  auto model = gaussian("2");
  SampleJob job;
  // Ancestral samplers lose s²(σ − σ_down)²/(s² + σ²) of variance per step (first order): many steps.
  job.sigmas = make_sigmas("karras", 400, model->metadata().schedule, KeyValueArgs(""));
  for (uint64_t i = 0; i < 3000; ++i) job.seeds.push_back(i);
  job.batch = 3000;
  torch::Tensor x = run_sampler(*s, model, job).samples.to(torch::kFloat64);
  const double n = static_cast<double>(x.numel());
  EXPECT_NEAR(x.mean().item<double>(), kMu, 5 * kStd / std::sqrt(n));
  // Sample variance of a Gaussian has relative s.e. sqrt(2/n) ≈ 1.8% here; allow discretisation.
  EXPECT_NEAR(x.var().item<double>() / (kStd * kStd), 1.0, 0.08);
}

TEST_P(SamplerTest, SampleDoesNotDependOnBatchSizeOrPosition) {
  auto s = sampler();
  auto model = make_builtin("builtin:gmm:shape=1x4x4,k=3");
  SampleJob job;
  job.sigmas = make_sigmas("karras", 6, model->metadata().schedule, KeyValueArgs(""));
  job.seeds = {5, 6, 7, 8, 9};
  job.batch = 5;
  torch::Tensor all = run_sampler(*s, model, job).samples;
  job.batch = 2;
  torch::Tensor split = run_sampler(*s, model, job).samples;
  EXPECT_TRUE(torch::equal(all, split));
  job.seeds = {8};
  job.batch = 1;
  EXPECT_TRUE(torch::equal(run_sampler(*s, model, job).samples[0], all[3]));
}

INSTANTIATE_TEST_SUITE_P(All, SamplerTest, ::testing::ValuesIn(kSamplerCases), case_name);

TEST(Sampler, NfeBudgetTooSmallSaysTheMinimum) {
  auto heun = make_sampler("heun");
  EXPECT_EQ(heun->steps_for_nfe(9), 5);
  try {
    make_sampler("euler")->steps_for_nfe(0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("at least 1 NFE"), std::string::npos) << e.what();
  }
}

TEST(Sampler, DdimEtaZeroIsEuler) {
  auto model = gaussian();
  auto sigmas = make_sigmas("karras", 7, model->metadata().schedule, KeyValueArgs(""));
  torch::Tensor x0 = torch::randn({3, 4}, torch::kFloat64) * sigmas[0];
  NoiseSource n1({1, 2, 3}), n2({1, 2, 3});
  torch::Tensor a = make_sampler("ddim")->sample(Denoiser(model), x0, sigmas, n1);
  torch::Tensor b = make_sampler("euler")->sample(Denoiser(model), x0, sigmas, n2);
  EXPECT_TRUE(torch::allclose(a, b, 0, 0));
}
