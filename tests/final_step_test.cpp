// --final zero|none|denoise (scoreflow/final_step.h): parsing, the grids each choice integrates over,
// and the commands that take it. Per-sampler NFE and results: SamplerTest.HonoursEachFinalStep.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "scoreflow/builtin.h"
#include "scoreflow/error.h"
#include "scoreflow/npy.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "scoreflow/sigmas.h"
#include "tests/support/error_text.h"

using namespace scoreflow;

namespace {

using scoreflow::testing_support::error_of;

}  // namespace

TEST(FinalStep, ParsesTheThreeChoicesAndNamesTheFieldOtherwise) {
  for (FinalStep f : {FinalStep::Zero, FinalStep::None, FinalStep::Denoise})
    EXPECT_EQ(parse_final_step(final_step_name(f)), f);
  EXPECT_EQ(error_of([] { parse_final_step("last"); }), "final: unknown value 'last'; valid: zero, none, denoise");
}

TEST(FinalStep, NoneGridsHaveStepsPlusOnePointsEndingAtSigmaMin) {
  auto model = make_builtin("builtin:gaussian:shape=2");
  const NoiseSchedule& schedule = model->metadata().schedule;
  for (const std::string name : {"karras", "logsnr", "vp_time_uniform"}) {
    const auto zero = make_sigmas(name, 5, schedule, KeyValueArgs(""), FinalStep::Zero);
    const auto none = make_sigmas(name, 5, schedule, KeyValueArgs(""), FinalStep::None);
    ASSERT_EQ(zero.size(), 6u);
    ASSERT_EQ(none.size(), 6u);
    EXPECT_EQ(zero.back(), 0.0);
    EXPECT_NEAR(none.front(), schedule.sigma_max(), 1e-12 * schedule.sigma_max()) << name;
    EXPECT_NEAR(none.back(), schedule.sigma_min(), 1e-12) << name;
    // The zero grid of 6 steps has the same positive points.
    auto six = make_sigmas(name, 6, schedule, KeyValueArgs(""));
    six.pop_back();
    EXPECT_EQ(none, six) << name;
    EXPECT_EQ(make_sigmas(name, 5, schedule, KeyValueArgs(""), FinalStep::Denoise), none) << name;
  }
  // Explicit lists: as given for none/denoise (a trailing 0 refused), 0 appended for zero.
  EXPECT_EQ(explicit_sigmas({80, 10, 1}, FinalStep::None), (std::vector<double>{80, 10, 1}));
  EXPECT_EQ(explicit_sigmas({80, 10, 1}, FinalStep::Zero), (std::vector<double>{80, 10, 1, 0}));
  EXPECT_NE(error_of([] { explicit_sigmas({80, 10, 0}, FinalStep::None); }).find("ends at 0"), std::string::npos);
  EXPECT_NE(error_of([] { explicit_sigmas({80}, FinalStep::Denoise); }).find("at least two sigmas"), std::string::npos);
  // run_sampler refuses a grid ending in 0 for none/denoise.
  SampleJob job;
  job.sigmas = {80, 1, 0};
  job.final = FinalStep::Denoise;
  job.seeds = {0};
  EXPECT_NE(error_of([&] { run_sampler(*make_sampler("euler"), model, job); }).find("needs a grid ending above 0"),
            std::string::npos);
}

TEST(FinalStep, HeunAndDpmSolver2CountTheirLastCorrection) {
  // EDM's "2N − 1" for Heun counts the Euler step into 0; a grid ending at σ_min corrects every step.
  auto heun = make_sampler("heun"), dpm2 = make_sampler("dpm_solver_2"), euler = make_sampler("euler");
  EXPECT_EQ(heun->nfe_for(5, FinalStep::Zero), 9);
  EXPECT_EQ(heun->nfe_for(5, FinalStep::None), 10);
  EXPECT_EQ(heun->nfe_for(5, FinalStep::Denoise), 11);
  EXPECT_EQ(dpm2->nfe_for(4, FinalStep::None), 8);
  EXPECT_EQ(euler->nfe_for(4, FinalStep::Denoise), 5);
  EXPECT_EQ(heun->steps_for_nfe(9, FinalStep::None), 4);
  EXPECT_EQ(heun->steps_for_nfe(9, FinalStep::Zero), 5);
  EXPECT_NE(error_of([&] { heun->steps_for_nfe(2, FinalStep::Denoise); }).find("needs at least 3 NFE"),
            std::string::npos);
}

#ifdef SCOREFLOW_CLI_PATH
#include "tests/support/cli_run.h"

namespace {
using scoreflow::testing_cli::run;
using scoreflow::testing_cli::tmp;
}  // namespace

TEST(FinalStepCli, SampleNoneOnExplicitSigmasEqualsTheLibraryRun) {
  const std::string model = "builtin:gmm:shape=3,k=2";
  const std::string npz = tmp("final_none.npz");
  auto r = run("sample --model " + model + " --sampler heun --sigmas 80,10,1,0.1 --final none --seeds 0-3 --npz " +
               npz + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["final"], "none");
  EXPECT_EQ(doc["steps"], 3);
  EXPECT_EQ(doc["nfe"], 6);
  SampleJob job;
  job.sigmas = {80, 10, 1, 0.1};
  job.final = FinalStep::None;
  job.seeds = {0, 1, 2, 3};
  const torch::Tensor want = run_sampler(*make_sampler("heun"), make_builtin(model), job).samples;
  // The CLI runs with one thread; the library here with LibTorch's default (same kernels, rounding aside).
  EXPECT_TRUE(torch::allclose(io::to_tensor(io::read_npz(npz).at("samples")), want, 1e-6, 1e-6));
  // denoise: one more call; zero: 0 appended, Heun's last step an Euler step.
  for (const auto& [final, nfe] : std::vector<std::pair<std::string, int>>{{"denoise", 7}, {"zero", 7}}) {
    auto d = run("sample --model " + model + " --sampler heun --sigmas 80,10,1,0.1 --final " + final +
                 " --seeds 0-1 --json");
    ASSERT_EQ(d.code, 0) << d.err;
    EXPECT_EQ(nlohmann::json::parse(d.out)["nfe"], nfe) << final;
  }
  scoreflow::testing_cli::expect_refused("sample --model " + model + " --final last --seeds 0 --json",
                                         "--final: unknown value 'last'; valid: zero, none, denoise");
  scoreflow::testing_cli::expect_refused("sample --model " + model + " --sigmas 80,1,0 --final none --seeds 0 --json",
                                         "ends at 0");
  scoreflow::testing_cli::expect_refused(
      "sample --model " + model + " --sampler ipndm --sampler-args denoise_to_zero=true --final none --json",
      "denoise_to_zero=true is --final denoise on a grid ending in 0");
}

TEST(FinalStepCli, EveryCommandTakesFinalAndCountsItsNfe) {
  const std::string model = " --model builtin:gmm:shape=2,k=2";
  // compare: --nfe 4 is 2 Heun steps ending at sigma_min (4 calls), 4 Euler steps.
  const std::string dir = tmp("final_compare");
  auto c = run("compare" + model +
               " --samplers euler,heun --nfe 4 --final none --metric ode-error "
               "--reference-steps 20 --num 4 --out-dir " +
               dir + " --overwrite --json");
  ASSERT_EQ(c.code, 0) << c.err;
  const auto report = nlohmann::json::parse(c.out);
  for (const auto& cell : report["cells"]) {
    EXPECT_EQ(cell["final"], "none");
    EXPECT_EQ(cell["nfe_used"], 4) << cell.dump();
    EXPECT_EQ(cell["steps"], cell["sampler"] == "heun" ? 2 : 4) << cell.dump();
  }
  // eval fid --model: the sampling section says the final step and the NFE.
  torch::manual_seed(2);
  const std::string data = tmp("final_points.npy");
  io::write_npy(data, io::from_tensor(torch::randn({20, 2})));
  auto f = run("eval fid --features none --ref-data " + data + model +
               " --sampler heun --steps 3 --final denoise --seeds 0-9 --json");
  ASSERT_EQ(f.code, 0) << f.err;
  auto sampling = nlohmann::json::parse(f.out)["sampling"];
  EXPECT_EQ(sampling["final"], "denoise");
  EXPECT_EQ(sampling["nfe"], 7);
  // bench: --nfe 6 with none is 3 corrected Heun steps.
  auto b = run("bench" + model + " --sampler heun --nfe 6 --final none --batch 2 --repeat 1 --iterations 1 --json");
  ASSERT_EQ(b.code, 0) << b.err;
  auto line = nlohmann::json::parse(b.out);
  EXPECT_EQ(line["nfe"], 6);
  EXPECT_EQ(line["steps"], 3);
  EXPECT_EQ(line["final"], "none");
  // train-amed: 2 intervals ending at sigma_min, then D there: 2·2 + 1 calls; recorded in the file.
  const std::string pt = tmp("final_amed.pt");
  auto t = run("train-amed" + model + " --steps 2 --final denoise --num-trajectories 128 --out " + pt + " --json");
  ASSERT_EQ(t.code, 0) << t.err;
  auto trained = nlohmann::json::parse(t.out);
  EXPECT_EQ(trained["nfe"], 5);
  EXPECT_EQ(trained["final"], "denoise");
  auto s = run("sample" + model + " --sampler amed --sampler-args predictor=" + pt +
               " --schedule vp_time_uniform --steps 2 --seeds 0-1 --json");
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_EQ(nlohmann::json::parse(s.out)["nfe"], 5);
  EXPECT_EQ(nlohmann::json::parse(s.out)["final"], "denoise");
}
#endif
