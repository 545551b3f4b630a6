// Typed sampler options (scoreflow/samplers.h): each typed sampler is the registry's sampler of the
// same name. Built from options or from the equivalent "k=v" text it gives bit-identical samples,
// the same name, order and NFE, and refuses a bad value with the same message.
#include <gtest/gtest.h>

#include <functional>

#include "scoreflow/amed.h"
#include "scoreflow/builtin.h"
#include "scoreflow/discrete_chain.h"
#include "scoreflow/error.h"
#include "scoreflow/fingerprint.h"
#include "scoreflow/gamma_estimation.h"
#include "scoreflow/gamma_table.h"
#include "scoreflow/registry.h"
#include "scoreflow/samplers.h"
#include "scoreflow/sigmas.h"

using namespace scoreflow;

namespace {

struct TypedCase {
  const char* name;  // registry name
  const char* args;  // the "k=v" text equivalent to `make`
  std::function<std::unique_ptr<Sampler>()> make;
};

template <class S, class Options>
std::function<std::unique_ptr<Sampler>()> typed(const Options& options) {
  return [options] { return std::make_unique<S>(options); };
}

// One line per typed sampler with non-default options (every option of the struct set away from its
// default somewhere), and the defaults of each.
const std::vector<TypedCase>& cases() {
  static const std::vector<TypedCase> list = {
      {"euler", "", typed<Euler>(EulerOptions())},
      {"euler", "afs=true,denoise_to_zero=true", typed<Euler>(EulerOptions().afs(true).denoise_to_zero(true))},
      {"heun", "", typed<Heun>(HeunOptions())},
      {"heun", "s_churn=5,s_tmin=0.05,s_tmax=10,s_noise=1.003,denoise_to_zero=true",
       typed<Heun>(HeunOptions().s_churn(5).s_tmin(0.05).s_tmax(10).s_noise(1.003).denoise_to_zero(true))},
      {"heun", "afs=true", typed<Heun>(HeunOptions().afs(true))},
      {"ddim", "", typed<Ddim>(DdimOptions())},
      {"ddim", "eta=0.7,afs=true", typed<Ddim>(DdimOptions().eta(0.7).afs(true))},
      {"ddpm", "", typed<Ddpm>(DdpmOptions())},
      {"ddpm", "variance=beta,afs=true", typed<Ddpm>(DdpmOptions().variance(DdpmVariance::Beta).afs(true))},
      {"euler_maruyama", "", typed<EulerMaruyama>(EulerMaruyamaOptions())},
      {"euler_maruyama", "afs=true", typed<EulerMaruyama>(EulerMaruyamaOptions().afs(true))},
      {"dpm_solver_2", "", typed<DpmSolver2>(DpmSolver2Options())},
      {"dpm_solver_2", "r=0.3,afs=true,denoise_to_zero=true",
       typed<DpmSolver2>(DpmSolver2Options().r(0.3).afs(true).denoise_to_zero(true))},
      {"dpmpp_2m", "", typed<DpmppMultistep>(DpmppOptions())},
      {"dpmpp_2m", "lower_order_final=false,thresholding=dynamic,afs=true,denoise_to_zero=true",
       typed<DpmppMultistep>(DpmppOptions()
                                 .lower_order_final(LowerOrderFinal::Never)
                                 .thresholding(Thresholding::Dynamic)
                                 .afs(true)
                                 .denoise_to_zero(true))},
      {"dpmpp_3m", "", typed<DpmppMultistep>(DpmppOptions().order(3))},
      {"dpmpp_3m", "d2=taylor,lower_order_final=always",
       typed<DpmppMultistep>(DpmppOptions().order(3).d2(DpmppD2::Taylor).lower_order_final(LowerOrderFinal::Always))},
      {"dpmpp_2m_sde", "", typed<Dpmpp2mSde>(Dpmpp2mSdeOptions())},
      {"dpmpp_2m_sde", "eta=0.5,solver_type=heun,afs=true",
       typed<Dpmpp2mSde>(Dpmpp2mSdeOptions().eta(0.5).solver_type(SdeSolverType::Heun).afs(true))},
      {"unipc", "", typed<UniPc>(UnipcOptions())},
      {"unipc", "variant=bh1,order=3,lower_order_final=below10,thresholding=dynamic,denoise_to_zero=true",
       typed<UniPc>(UnipcOptions()
                        .variant(UnipcVariant::Bh1)
                        .order(3)
                        .lower_order_final(LowerOrderFinal::Below10)
                        .thresholding(Thresholding::Dynamic)
                        .denoise_to_zero(true))},
      {"unipc", "order=1,afs=true", typed<UniPc>(UnipcOptions().order(1).afs(true))},
      {"ipndm", "", typed<Ipndm>(IpndmOptions())},
      {"ipndm", "max_order=2,afs=true,denoise_to_zero=true",
       typed<Ipndm>(IpndmOptions().max_order(2).afs(true).denoise_to_zero(true))},
      {"ipndm_v", "", typed<IpndmV>(IpndmVOptions())},
      {"ipndm_v", "max_order=3,weights=exact,afs=true,denoise_to_zero=true",
       typed<IpndmV>(IpndmVOptions().max_order(3).weights(IpndmWeights::Exact).afs(true).denoise_to_zero(true))},
      {"deis", "", typed<Deis>(DeisOptions())},
      {"deis", "order=2,variant=rhoab,afs=true,denoise_to_zero=true",
       typed<Deis>(DeisOptions().order(2).variant(DeisVariant::Rhoab).afs(true).denoise_to_zero(true))},
  };
  return list;
}

const char* const kGmm = "builtin:gmm:shape=1x4x4,k=3";

std::vector<double> grid(const Model& model) {
  return make_sigmas("karras", 6, model.metadata().schedule, KeyValueArgs(""), FinalStep::None);
}

// Samples of `sampler` from fixed noise on a 6-step grid ending at σ_min > 0 (where denoise_to_zero
// changes the result), seeds 1..3 (the stochastic samplers draw from them).
torch::Tensor run(const Sampler& sampler) {
  auto model = make_builtin(kGmm);
  const std::vector<double> sigmas = grid(*model);
  torch::manual_seed(11);
  torch::Tensor x = torch::randn({3, 1, 4, 4}) * sigmas[0];
  NoiseSource noise({1, 2, 3});
  return sampler.sample(Denoiser(model), x, sigmas, noise);
}

std::string message(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(TypedSamplers, TypedSamplersMatchTheStringRegistry) {
  for (const TypedCase& c : cases()) {
    SCOPED_TRACE(std::string(c.name) + " '" + c.args + "'");
    const std::unique_ptr<Sampler> from_text = make_sampler(c.name, c.args), from_options = c.make();
    EXPECT_EQ(from_options->name(), c.name);
    EXPECT_EQ(from_options->order(), from_text->order());
    EXPECT_EQ(from_options->stochastic(), from_text->stochastic());
    EXPECT_EQ(from_options->min_steps(), from_text->min_steps());
    for (int steps : {1, 2, 5, 12}) {
      EXPECT_EQ(from_options->nfe(steps), from_text->nfe(steps));
      EXPECT_EQ(from_options->nfe_above_zero(steps), from_text->nfe_above_zero(steps));
    }
    EXPECT_TRUE(torch::equal(run(*from_options), run(*from_text)));
  }
}

// Each non-default line changes the samples: the options reach the method, they are not dropped on
// the way (defaults would then match defaults, and the test above could not tell).
TEST(TypedSamplers, NonDefaultOptionsChangeTheSamples) {
  for (const TypedCase& c : cases()) {
    if (std::string(c.args).empty() || std::string(c.name) == "dpmpp_3m") continue;
    SCOPED_TRACE(std::string(c.name) + " '" + c.args + "'");
    EXPECT_FALSE(torch::equal(run(*c.make()), run(*make_sampler(c.name))));
  }
  const torch::Tensor order3 = run(DpmppMultistep(DpmppOptions().order(3)));
  EXPECT_FALSE(torch::equal(order3, run(DpmppMultistep())));
  EXPECT_FALSE(torch::equal(order3, run(DpmppMultistep(DpmppOptions().order(3).d2(DpmppD2::Taylor)))));
}

TEST(TypedSamplers, DefaultsAreTheStringDefaults) {
  const HeunOptions heun;
  EXPECT_EQ(heun.s_churn(), 0.0);
  EXPECT_EQ(heun.s_tmin(), 0.0);
  EXPECT_TRUE(std::isinf(heun.s_tmax()));
  EXPECT_EQ(heun.s_noise(), 1.0);
  EXPECT_EQ(DdimOptions().eta(), 0.0);
  EXPECT_EQ(Dpmpp2mSdeOptions().eta(), 1.0);
  EXPECT_EQ(DpmSolver2Options().r(), 0.5);
  EXPECT_EQ(DpmppOptions().order(), 2);
  EXPECT_EQ(UnipcOptions().order(), 2);
  EXPECT_EQ(UnipcOptions().variant(), UnipcVariant::Bh2);
  EXPECT_EQ(IpndmOptions().max_order(), 4);
  EXPECT_EQ(IpndmVOptions().max_order(), 4);
  EXPECT_EQ(DeisOptions().order(), 3);
  EXPECT_EQ(Deis().options().variant(), DeisVariant::Tab);
}

TEST(TypedSamplers, BadValuesAreRefusedWithTheStringMessage) {
  const std::vector<std::pair<std::function<void()>, std::pair<const char*, const char*>>> bad = {
      {[] { Heun(HeunOptions().s_churn(-1)); }, {"heun", "s_churn=-1"}},
      {[] { Heun(HeunOptions().s_noise(-0.5)); }, {"heun", "s_noise=-0.5"}},
      {[] { Ddim(DdimOptions().eta(2)); }, {"ddim", "eta=2"}},
      {[] { DpmSolver2(DpmSolver2Options().r(0)); }, {"dpm_solver_2", "r=0"}},
      {[] { Dpmpp2mSde(Dpmpp2mSdeOptions().eta(-1)); }, {"dpmpp_2m_sde", "eta=-1"}},
      {[] { UniPc(UnipcOptions().order(4)); }, {"unipc", "order=4"}},
      {[] { Ipndm(IpndmOptions().max_order(5)); }, {"ipndm", "max_order=5"}},
      {[] { IpndmV(IpndmVOptions().max_order(0)); }, {"ipndm_v", "max_order=0"}},
      {[] { Deis(DeisOptions().order(4)); }, {"deis", "order=4"}},
  };
  for (const auto& [fn, text] : bad) {
    SCOPED_TRACE(std::string(text.first) + " " + text.second);
    const std::string from_options = message(fn), from_text = message([&] { make_sampler(text.first, text.second); });
    EXPECT_EQ(from_options, from_text);
    const std::string field = std::string(text.second).substr(0, std::string(text.second).find('='));
    EXPECT_NE(from_text.find(field), std::string::npos) << from_text;
  }
  // The order has no string form (the name carries it); it is checked like the others.
  EXPECT_EQ(message([] { DpmppMultistep(DpmppOptions().order(4)); }), "dpmpp: order must be 2 or 3, got 4");
}

// The typed object is a value: copies sample alike and keep their options.
TEST(TypedSamplers, TypedSamplersAreValues) {
  const UniPc a(UnipcOptions().order(3));
  const UniPc b = a;
  EXPECT_EQ(b.options().order(), 3);
  EXPECT_TRUE(torch::equal(run(a), run(b)));
}

// The Analytic-DPM family on a vp_discrete model with a Γ file (any Γ: the comparison is between the
// two ways of building the same sampler).
TEST(TypedSamplers, AnalyticSamplersMatchTheStringRegistry) {
  auto model = make_builtin("builtin:gaussian:shape=1x4x4,mean=0.2,std=0.3,schedule=vp_discrete");
  const DiscreteChain chain = chain_of(*model);
  GammaTable table(gamma_meta_for(*model), chain.num_steps());
  for (int64_t t = 1; t <= chain.num_steps(); ++t) table.set(t, 0.5 + 0.4 * t / chain.num_steps(), 0.0, 1);
  const std::string gamma = ::testing::TempDir() + "/typed_samplers_gamma.json";
  table.save(gamma);
  const std::vector<double> sigmas = trajectory_sigmas(chain, make_trajectory("even", chain, 5, nullptr));
  auto draw = [&](const Sampler& sampler) {
    torch::manual_seed(5);
    torch::Tensor x = torch::randn({3, 1, 4, 4}) * sigmas[0];
    NoiseSource noise({4, 5, 6});
    return sampler.sample(Denoiser(model), x, sigmas, noise);
  };
  const std::vector<TypedCase> analytic_cases = {
      {"analytic_ddpm", "", typed<AnalyticDdpm>(AnalyticDdpmOptions().gamma(gamma))},
      {"analytic_ddpm", "clip_x0=false,clip_variance=false,mean_last=false,sigma2_clip=0,mean=eps",
       typed<AnalyticDdpm>(
           AnalyticDdpmOptions().gamma(gamma).clip_x0(false).clip_variance(false).mean_last(false).sigma2_clip(0).mean(
               AnalyticMean::Eps))},
      {"analytic_ddim", "", typed<AnalyticDdim>(AnalyticDdimOptions().gamma(gamma))},
      {"analytic_ddim", "eta=0.5,noise=false,mean=posterior,sigma2_clip=3",
       typed<AnalyticDdim>(
           AnalyticDdimOptions().gamma(gamma).eta(0.5).noise(false).mean(AnalyticMean::Posterior).sigma2_clip(3))},
  };
  for (const TypedCase& c : analytic_cases) {
    const std::string args = std::string(c.args) + (std::string(c.args).empty() ? "" : ",") + "gamma=" + gamma;
    SCOPED_TRACE(std::string(c.name) + " '" + args + "'");
    const std::unique_ptr<Sampler> from_text = make_sampler(c.name, args), from_options = c.make();
    EXPECT_EQ(from_options->name(), c.name);
    EXPECT_EQ(from_options->nfe(7), from_text->nfe(7));
    const torch::Tensor typed_samples = draw(*from_options);
    EXPECT_TRUE(torch::equal(typed_samples, draw(*from_text)));
    if (*c.args) EXPECT_FALSE(torch::equal(typed_samples, draw(*make_sampler(c.name, "gamma=" + gamma))));
  }
  // SN-/NPR-DPM need a model with a variance head: on one without, both ways refuse alike.
  for (const auto& [name, sampler] : std::vector<std::pair<std::string, std::shared_ptr<Sampler>>>{
           {"sn_dpm", std::make_shared<SnDpm>(SnDpmOptions().eta(0.5))},
           {"npr_dpm", std::make_shared<NprDpm>(NprDpmOptions().eta(0.5))}}) {
    EXPECT_EQ(sampler->name(), name);
    const std::string from_options = message([&] { draw(*sampler); });
    EXPECT_NE(from_options.find("head"), std::string::npos) << from_options;
    EXPECT_EQ(from_options, message([&] { draw(*make_sampler(name, "eta=0.5")); }));
  }
  EXPECT_EQ(message([&] { AnalyticDdim(AnalyticDdimOptions().gamma(gamma).eta(2)); }),
            message([&] { make_sampler("analytic_ddim", "eta=2,gamma=" + gamma); }));
  EXPECT_EQ(message([] { SnDpm(SnDpmOptions().sigma2_clip(-1)); }),
            message([] { make_sampler("sn_dpm", "sigma2_clip=-1"); }));
  EXPECT_EQ(message([] { AnalyticDdpm{AnalyticDdpmOptions()}; }), message([] { make_sampler("analytic_ddpm"); }));
  EXPECT_NE(message([] { AnalyticDdpm{AnalyticDdpmOptions()}; }).find("gamma"), std::string::npos);
}

namespace {

// An AMED predictor file for run()'s model and grid, trained (as its record says) for `student` with
// AFS, and a table file from another network: fresh weights from `seed` do, the comparison is between
// two ways of building one sampler.
struct AmedFiles {
  std::string predictor, table;
};
AmedFiles amed_files(const std::string& student) {
  auto model = make_builtin(kGmm);
  AmedRecord record;
  record.student = student;
  record.teacher = student == "amed" || student == "euler" ? "heun" : student;
  record.afs = true;
  record.scale_time = 0.1;  // a ≠ 1 too
  record.sigmas = grid(*model);
  record.steps = static_cast<int>(record.sigmas.size()) - 1;
  record.final = FinalStep::None;
  record.schedule = model->metadata().schedule.describe();
  record.model = model->name();
  record.model_hash = model_fingerprint(*model);
  const std::string dir = ::testing::TempDir() + "/typed_samplers_amed_" + student;
  torch::manual_seed(21);
  AmedPredictor(record).save(dir + ".pt");
  torch::manual_seed(22);
  save_amed_table(dir + ".json", record, AmedPredictor(record).table());
  return {dir + ".pt", dir + ".json"};
}

}  // namespace

// AMED-Solver and AMED-Plugin: fixed (r, c, a) with and without AFS, the plugin on each base, and
// predictor and table files (afs and base left unset come from the file's record).
TEST(TypedSamplers, AmedSamplersMatchTheStringRegistry) {
  const AmedFiles solver = amed_files("amed"), plugin = amed_files("ipndm");
  struct AmedCase {
    std::string name, args;
    std::function<std::unique_ptr<Sampler>()> make;
  };
  const std::vector<AmedCase> amed_cases = {
      {"amed", "r=0.4", typed<Amed>(AmedOptions().r(0.4))},
      {"amed", "c=1.05", typed<Amed>(AmedOptions().c(1.05))},
      {"amed", "r=0.3,c=1.02,a=0.97,afs=true,denoise_to_zero=true",
       typed<Amed>(AmedOptions().r(0.3).c(1.02).a(0.97).afs(true).denoise_to_zero(true))},
      {"amed", "predictor=" + solver.predictor, typed<Amed>(AmedOptions().predictor(solver.predictor))},
      {"amed", "table=" + solver.table + ",afs=true", typed<Amed>(AmedOptions().table(solver.table).afs(true))},
      {"amed_plugin", "r=0.4", typed<AmedPlugin>(AmedPluginOptions().r(0.4))},
      {"amed_plugin", "r=0.4,base=ipndm,afs=true",
       typed<AmedPlugin>(AmedPluginOptions().r(0.4).base(AmedBase::Ipndm).afs(true))},
      {"amed_plugin", "a=1.03,base=dpmpp_2m", typed<AmedPlugin>(AmedPluginOptions().a(1.03).base(AmedBase::Dpmpp2m))},
      {"amed_plugin", "r=0.6,c=0.99,base=euler,afs=true",
       typed<AmedPlugin>(AmedPluginOptions().r(0.6).c(0.99).base(AmedBase::Euler).afs(true))},
      {"amed_plugin", "predictor=" + plugin.predictor,
       typed<AmedPlugin>(AmedPluginOptions().predictor(plugin.predictor))},
      {"amed_plugin", "table=" + plugin.table + ",base=ipndm",
       typed<AmedPlugin>(AmedPluginOptions().table(plugin.table).base(AmedBase::Ipndm))},
  };
  std::vector<torch::Tensor> samples;
  for (const AmedCase& c : amed_cases) {
    SCOPED_TRACE(c.name + " '" + c.args + "'");
    const std::unique_ptr<Sampler> from_text = make_sampler(c.name, c.args), from_options = c.make();
    EXPECT_EQ(from_options->name(), c.name);
    EXPECT_EQ(from_options->order(), from_text->order());
    EXPECT_EQ(from_options->default_final(), from_text->default_final());
    for (int steps : {2, 5, 12}) {
      EXPECT_EQ(from_options->nfe(steps), from_text->nfe(steps));
      EXPECT_EQ(from_options->nfe_above_zero(steps), from_text->nfe_above_zero(steps));
    }
    samples.push_back(run(*from_options));
    EXPECT_TRUE(torch::equal(samples.back(), run(*from_text)));
  }
  // Every option reaches the method: no two lines sample alike.
  for (size_t i = 0; i < samples.size(); ++i)
    for (size_t j = i + 1; j < samples.size(); ++j)
      EXPECT_FALSE(torch::equal(samples[i], samples[j])) << amed_cases[i].args << " vs " << amed_cases[j].args;
  // Unset afs is the record's (AFS: 2·5 − 1 NFE on 6 steps), unset base the record's student; unset
  // r, c, a are 1/2, 1, 1.
  EXPECT_EQ(Amed(AmedOptions().predictor(solver.predictor)).nfe(6), 9);
  EXPECT_EQ(AmedPlugin(AmedPluginOptions().r(0.4)).nfe(6), 10);
  EXPECT_TRUE(torch::equal(run(AmedPlugin(AmedPluginOptions().predictor(plugin.predictor))),
                           run(AmedPlugin(AmedPluginOptions().predictor(plugin.predictor).base(AmedBase::Ipndm)))));
  EXPECT_TRUE(torch::equal(run(Amed(AmedOptions().a(1.0))), run(*make_sampler("amed", "r=0.5,c=1,a=1"))));
  const AmedOptions unset;
  EXPECT_FALSE(unset.r() || unset.c() || unset.a() || unset.afs() || unset.base());
}

TEST(TypedSamplers, AmedOptionsAreRefusedWithTheStringMessage) {
  const AmedFiles files = amed_files("amed");
  const std::vector<std::pair<std::function<void()>, std::pair<std::string, std::string>>> bad = {
      {[] { Amed{AmedOptions()}; }, {"amed", ""}},
      {[] { AmedPlugin{AmedPluginOptions().base(AmedBase::Ipndm)}; }, {"amed_plugin", "base=ipndm"}},
      {[&] { Amed(AmedOptions().predictor(files.predictor).table(files.table)); },
       {"amed", "predictor=" + files.predictor + ",table=" + files.table}},
      {[&] { Amed(AmedOptions().predictor(files.predictor).r(0.5)); },
       {"amed", "predictor=" + files.predictor + ",r=0.5"}},
      {[&] { AmedPlugin(AmedPluginOptions().table(files.table).a(1.0)); },
       {"amed_plugin", "table=" + files.table + ",a=1"}},
      {[] { Amed(AmedOptions().r(1.5)); }, {"amed", "r=1.5"}},
      {[] { Amed(AmedOptions().c(0)); }, {"amed", "c=0"}},
      {[] { AmedPlugin(AmedPluginOptions().a(-1)); }, {"amed_plugin", "a=-1"}},
      {[&] { Amed(AmedOptions().predictor(files.predictor).afs(false)); },
       {"amed", "predictor=" + files.predictor + ",afs=false"}},
      {[&] { AmedPlugin(AmedPluginOptions().predictor(files.predictor)); },
       {"amed_plugin", "predictor=" + files.predictor}},
      {[&] { AmedPlugin(AmedPluginOptions().table(files.table).base(AmedBase::Euler)); },
       {"amed_plugin", "table=" + files.table + ",base=euler"}},
  };
  for (const auto& [fn, text] : bad) {
    SCOPED_TRACE(text.first + " '" + text.second + "'");
    const std::string from_options = message(fn);
    EXPECT_EQ(from_options, message([&] { make_sampler(text.first, text.second); }));
    EXPECT_NE(from_options, "(no error)");
  }
  // None or two of the coefficient sources: the message names all three.
  for (const std::string& text : {message([] { Amed{AmedOptions()}; }),
                                  message([&] { Amed(AmedOptions().predictor(files.predictor).table(files.table)); }),
                                  message([&] { Amed(AmedOptions().table(files.table).r(0.5)); })}) {
    EXPECT_EQ(text.rfind("amed needs exactly one of ", 0), 0u) << text;
    for (const char* field : {"predictor=", "table=", "r=,c=,a="})
      EXPECT_NE(text.find(field), std::string::npos) << text;
  }
  EXPECT_NE(message([] { Amed(AmedOptions().r(2)); }).find("r must be in [0, 1]"), std::string::npos);
  EXPECT_NE(message([] { Amed(AmedOptions().c(-1)); }).find("c must be > 0"), std::string::npos);
  EXPECT_NE(message([&] { Amed(AmedOptions().predictor(files.predictor).afs(false)); }).find("field 'afs' differs"),
            std::string::npos);
  EXPECT_NE(
      message([&] { AmedPlugin(AmedPluginOptions().predictor(files.predictor)); }).find("field 'student' differs"),
      std::string::npos);
  // base belongs to the plugin: the string path does not know it for amed, the typed one refuses it.
  EXPECT_NE(message([] { Amed(AmedOptions().r(0.5).base(AmedBase::Ipndm)); }).find("base"), std::string::npos);
  EXPECT_NE(message([] { make_sampler("amed", "r=0.5,base=ipndm"); }).find("base"), std::string::npos);
  // The names with no typed form are refused by the string path alone.
  EXPECT_EQ(message([] { make_sampler("amed_plugin", "r=0.5,base=amed"); }),
            "amed_plugin base must be euler, ipndm or dpmpp_2m; use sampler amed for AMED-Solver");
  EXPECT_NE(message([] { make_sampler("amed_plugin", "r=0.5,base=heun"); }).find("valid: amed, euler, ipndm, dpmpp_2m"),
            std::string::npos);
}
