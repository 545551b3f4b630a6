// Multistep solvers against independently computed values, and the shared options (afs,
// denoise_to_zero). Reference: tests/data/solver_reference.json from scripts/gen_solver_reference.py
// (λ-space formulas from the DPM-Solver++ and UniPC papers, quadrature for the integrals).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "scoreflow/builtin.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"
#include "scoreflow/sigmas.h"

using namespace scoreflow;

namespace {

std::shared_ptr<GaussianMixtureModel> gaussian(double mean, double std, const std::string& schedule = "edm") {
  return make_builtin("builtin:gaussian:shape=3,mean=" + std::to_string(mean) + ",std=" + std::to_string(std) +
                      ",schedule=" + schedule);
}

torch::Tensor run(const Sampler& s, std::shared_ptr<const Model> model, const torch::Tensor& x,
                  const std::vector<double>& sigmas, int64_t* nfe = nullptr) {
  Denoiser d(std::move(model));
  std::vector<uint64_t> seeds;
  for (int64_t b = 0; b < x.size(0); ++b) seeds.push_back(b + 1);
  NoiseSource noise(seeds);
  torch::Tensor out = s.sample(d, x, sigmas, noise);
  if (nfe) *nfe = d.nfe();
  return out;
}

}  // namespace

TEST(SolverReference, DpmSolverPlusPlusAndUniPcMatchThePythonReference) {
  std::ifstream in(std::string(SCOREFLOW_SOURCE_DIR) + "/tests/data/solver_reference.json");
  ASSERT_TRUE(in) << "tests/data/solver_reference.json missing";
  nlohmann::json doc = nlohmann::json::parse(in);
  auto model = gaussian(doc["model"]["mean"], doc["model"]["std"]);
  torch::Tensor x_t = torch::tensor(doc["x_T"].get<std::vector<double>>(), torch::kFloat64).unsqueeze(0);
  int checked = 0;
  for (const auto& c : doc["cases"]) {
    const std::string name = c["sampler"], args = c["args"], grid = c["grid"];
    auto sigmas = doc["grids"][grid].get<std::vector<double>>();
    torch::Tensor want = torch::tensor(c["out"].get<std::vector<double>>(), torch::kFloat64);
    torch::Tensor got = run(*make_sampler(name, args), model, x_t, sigmas)[0];
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-10) << name << " " << args << " on grid " << grid;
    ++checked;
  }
  EXPECT_EQ(checked, 32);
}

// DEIS tAB against scripts/gen_deis_reference.py: the paper's VP exponential integrator with quadrature
// in t (scipy), on an EDM model (VP time fitted to its σ range) and a vp_linear one (its own t).
TEST(SolverReference, DeisMatchesThePythonReference) {
  std::ifstream in(std::string(SCOREFLOW_SOURCE_DIR) + "/tests/data/deis_reference.json");
  ASSERT_TRUE(in) << "tests/data/deis_reference.json missing";
  nlohmann::json doc = nlohmann::json::parse(in);
  torch::Tensor x_t = torch::tensor(doc["x_T"].get<std::vector<double>>(), torch::kFloat64).unsqueeze(0);
  int checked = 0;
  for (const auto& c : doc["cases"]) {
    const std::string args = c["args"], grid = c["grid"], schedule = c["schedule"];
    auto model = gaussian(doc["model"]["mean"], doc["model"]["std"], schedule);
    auto sigmas = doc["grids"][grid].get<std::vector<double>>();
    torch::Tensor want = torch::tensor(c["out"].get<std::vector<double>>(), torch::kFloat64);
    torch::Tensor got = run(*make_sampler("deis", args), model, x_t, sigmas)[0];
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-10) << args << " on " << schedule << ", grid " << grid;
    ++checked;
  }
  EXPECT_EQ(checked, 18);
}

TEST(SamplerOptions, DeisOrderOneIsEulerAndRhoAbIsVariableStepAdamsBashforth) {
  auto model = gaussian(0.3, 0.5);
  auto sigmas = make_sigmas("karras", 9, model->metadata().schedule, KeyValueArgs(""));
  torch::Tensor x = torch::randn({2, 3}, torch::kFloat64) * sigmas[0];
  // Order 1: the Lagrange "polynomial" is ε_i itself and C_0 = σ' − σ, i.e. Euler (= DDIM), in
  // float32 and float64 alike.
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    torch::Tensor xd = x.to(dtype);
    EXPECT_TRUE(torch::equal(run(*make_sampler("deis", "order=1"), model, xd, sigmas),
                             run(*make_sampler("euler"), model, xd, sigmas)));
    EXPECT_TRUE(torch::equal(run(*make_sampler("deis", "order=1,afs=true"), model, xd, sigmas),
                             run(*make_sampler("ddim", "afs=true"), model, xd, sigmas)));
  }
  // A σ range no VP-linear schedule passes through (σ_min = 1: log 2 > 10⁻³·log(1 + σ_max²)) is
  // refused, naming the way out.
  auto ve = make_builtin("builtin:gaussian:shape=3,schedule=ve,sigma_min=1,sigma_max=50");
  try {
    run(*make_sampler("deis"), ve, x, sigmas);
    ADD_FAILURE() << "deis accepted a sigma range without a VP time";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("use variant=rhoab"), std::string::npos) << e.what();
  }
  // ρAB (ε polynomial in σ) is iPNDM-v's variable-step Adams–Bashforth of the same order, whose step
  // into 0 is then the final denoise.
  for (int order : {2, 3}) {
    const std::string o = std::to_string(order);
    torch::Tensor rho_ab = run(*make_sampler("deis", "variant=rhoab,order=" + o), model, x, sigmas);
    torch::Tensor ab =
        run(*make_sampler("ipndm_v", "weights=exact,denoise_to_zero=true,max_order=" + o), model, x, sigmas);
    EXPECT_TRUE(torch::allclose(rho_ab, ab, 0, 1e-12)) << order;
  }
}

TEST(SamplerOptions, AfsSavesExactlyOneModelCallOnEverySampler) {
  auto model = gaussian(0.3, 0.5);
  auto sigmas = make_sigmas("karras", 6, model->metadata().schedule, KeyValueArgs(""));
  torch::Tensor x = torch::randn({2, 3}, torch::kFloat64) * sigmas[0];
  for (const SamplerInfo& info : sampler_table()) {
    // The discrete-chain samplers (Analytic-DPM, SN/NPR-DPM) have no AFS: their first step is a
    // step of the chain, not an ODE step; AMED needs its coefficients.
    if (info.name.rfind("analytic_", 0) == 0 || info.name == "sn_dpm" || info.name == "npr_dpm") continue;
    const std::string base = info.name.rfind("amed", 0) == 0 ? "r=0.5" : "";
    auto plain = make_sampler(info.name, base),
         afs = make_sampler(info.name, base + (base.empty() ? "" : ",") + "afs=true");
    EXPECT_EQ(afs->nfe(6), plain->nfe(6) - 1) << info.name;
    int64_t counted = 0;
    torch::Tensor out = run(*afs, model, x, sigmas, &counted);
    EXPECT_EQ(counted, afs->nfe(6)) << info.name;
    EXPECT_TRUE(torch::isfinite(out).all().item<bool>()) << info.name;
  }
  // With AFS, Euler's first step uses d_0 = x/sqrt(1 + σ_0²) (D ≈ 0).
  auto one = std::vector<double>{sigmas[0], 0.0};
  torch::Tensor got = run(*make_sampler("euler", "afs=true"), model, x, one);
  EXPECT_TRUE(torch::allclose(got, x - sigmas[0] * x / std::sqrt(1 + sigmas[0] * sigmas[0]), 1e-12, 1e-12));
}

TEST(SamplerOptions, DenoiseToZeroOnAGridEndingAboveZeroIsThatGridWithZeroAppended) {
  auto model = gaussian(0.3, 0.5);
  const std::vector<double> above{12.0, 5.0, 2.0, 0.7, 0.2, 0.05};
  std::vector<double> with_zero = above;
  with_zero.push_back(0.0);
  torch::Tensor x = torch::randn({2, 3}, torch::kFloat64) * above[0];
  int samplers = 0;
  for (const SamplerInfo& info : sampler_table()) {
    std::unique_ptr<Sampler> s;
    try {
      s = make_sampler(info.name, "denoise_to_zero=true");
    } catch (const Error&) {
      continue;  // the option is only where a final denoise makes sense
    }
    ++samplers;
    int64_t nfe_above = 0, nfe_zero = 0;
    torch::Tensor a = run(*s, model, x, above, &nfe_above), b = run(*s, model, x, with_zero, &nfe_zero);
    EXPECT_TRUE(torch::equal(a, b)) << info.name;
    EXPECT_EQ(nfe_above, nfe_zero) << info.name;
    EXPECT_EQ(nfe_zero, s->nfe(static_cast<int>(with_zero.size()) - 1)) << info.name;
    // Where the step into 0 already is x ← D(x, σ_{N−1}), the option changes nothing on a 0-ending grid.
    if (info.name != "ipndm" && info.name != "ipndm_v")
      EXPECT_TRUE(torch::allclose(b, run(*make_sampler(info.name), model, x, with_zero), 0, 1e-12)) << info.name;
  }
  EXPECT_GE(samplers, 8);
}

TEST(SamplerOptions, IpndmVOnAUniformGridIsIpndm) {
  auto model = gaussian(0.3, 0.5);
  std::vector<double> uniform;
  for (int i = 0; i <= 8; ++i) uniform.push_back(4.0 - 0.5 * i);
  torch::Tensor x = torch::randn({2, 3}, torch::kFloat64) * 4.0;
  auto same = [&](const std::string& a_args, const std::string& b_args) {
    return torch::allclose(run(*make_sampler("ipndm", a_args), model, x, uniform),
                           run(*make_sampler("ipndm_v", b_args), model, x, uniform), 0, 1e-12);
  };
  // Exact variable-step weights reduce to the fixed ones on equal steps; so do the authors' closed
  // forms for up to three nodes, but their four-node weights there are (57, −65, 43, −11)/24, not
  // (55, −59, 37, −9)/24 (third order on equal steps): diff-sampler's iPNDM-v is not its iPNDM there.
  EXPECT_TRUE(same("", "weights=exact"));
  EXPECT_TRUE(same("max_order=3", "max_order=3"));
  EXPECT_FALSE(same("", ""));
}

TEST(SamplerOptions, BadOptionsNameTheValue) {
  for (auto [name, args, needle] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"unipc", "variant=bh3", "bh3"},
           {"unipc", "order=4", "4"},
           {"ipndm", "max_order=5", "5"},
           {"dpm_solver_2", "r=0", "0"},
           {"dpmpp_2m_sde", "eta=-1", "-1"},
           {"dpmpp_2m_sde", "solver_type=rk4", "rk4"},
           {"dpmpp_2m_sde", "denoise_to_zero=true", "valid:"},
           {"deis", "order=4", "order must be 1..3, got 4"},
           {"deis", "variant=xab", "valid: tab, rhoab"},
           {"deis", "orderr=2", "valid: afs, denoise_to_zero, order, variant"},
           {"dpmpp_3m", "d2=half", "valid: official, taylor"},
           {"ipndm_v", "weights=ab", "valid: deis, exact"},
           {"ipndm", "weights=exact", "valid: afs, denoise_to_zero, max_order"},
           {"unipc", "lower_order_final=sometimes", "true, false, always or below10"},
           {"dpmpp_2m", "thresholding=static", "valid: none, dynamic"}}) {
    try {
      make_sampler(name, args);
      ADD_FAILURE() << name << " accepted " << args;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
}
