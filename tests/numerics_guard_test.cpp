// Numerics guard (issue 8): a state that becomes NaN/Inf is reported with the step and σ where it
// happened, not blamed on the network; a network that returns NaN is reported with its σ and step;
// the deferred (GPU) mode checks on its cadence and still names the first bad call.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <sstream>

#include "scoreflow/error.h"
#include "scoreflow/model.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "scoreflow/sampler.h"
#include "tests/support/cli_run.h"
#include "tests/support/error_text.h"

namespace {

using scoreflow::Denoiser;
using scoreflow::NoiseSource;
using scoreflow::StepCallback;

/// Euler that poisons its state with Inf in step `bad` (0-based): after the step, or (two_stage)
/// in an intermediate stage evaluated inside the step.
class BlowUp : public scoreflow::Sampler {
 public:
  BlowUp(int bad, bool two_stage) : bad_(bad), two_stage_(two_stage) {}
  std::string name() const override { return "blowup"; }
  int order() const override { return 1; }
  int64_t nfe(int steps) const override { return two_stage_ ? 2 * steps : steps; }
  torch::Tensor sample(const Denoiser& denoise, torch::Tensor x, const std::vector<double>& sigmas, NoiseSource&,
                       const StepCallback& callback) const override {
    const int n = static_cast<int>(sigmas.size()) - 1;
    const double inf = std::numeric_limits<double>::infinity();
    for (int i = 0; i < n; ++i) {
      const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
      torch::Tensor d = scoreflow::to_d(x, sigma, denoise(x, sigma));
      if (two_stage_) {
        torch::Tensor mid = x + 0.5 * (sigma_next - sigma) * d;
        if (i == bad_) mid = mid * inf;
        d = scoreflow::to_d(mid, sigma, denoise(mid, 0.5 * (sigma + sigma_next)));
      }
      x = x + (sigma_next - sigma) * d;
      if (i == bad_ && !two_stage_) x = x * inf;
      if (callback) callback(i, n, sigma_next);
    }
    return x;
  }

 private:
  int bad_;
  bool two_stage_;
};

using scoreflow::testing_support::error_of;

scoreflow::SampleJob job_on(const std::vector<double>& sigmas) {
  scoreflow::SampleJob job;
  job.sigmas = sigmas;
  job.seeds = {0, 1, 2};
  job.batch = 3;
  return job;
}

const std::vector<double> kGrid = {20, 10, 5, 2, 1, 0.5, 0};

}  // namespace

TEST(NumericsGuard, StateBlowUpIsReportedWithItsStepNotBlamedOnTheNetwork) {
  auto model = scoreflow::open_model("builtin:gaussian:shape=1x4x4");
  const int n = static_cast<int>(kGrid.size()) - 1;
  for (int bad : {0, 2, 4}) {
    const std::string err = error_of([&] { scoreflow::run_sampler(BlowUp(bad, false), model, job_on(kGrid)); });
    // Step bad+1 (1-based) poisoned the state; the next network call, at sigma_{bad+1}, sees it.
    std::ostringstream want;
    want << "sampler blowup: the state became NaN or Inf in step " << bad + 1 << " of " << n
         << " (it is non-finite entering step " << bad + 2 << " at sigma=" << kGrid[bad + 1] << ")";
    EXPECT_NE(err.find(want.str()), std::string::npos) << err;
    EXPECT_EQ(err.find("network output is NaN"), std::string::npos) << "blamed on the network: " << err;
  }
  // A bad intermediate stage inside step 3.
  const std::string inside = error_of([&] { scoreflow::run_sampler(BlowUp(2, true), model, job_on(kGrid)); });
  EXPECT_NE(inside.find("inside step 3 of 6 (before its network call at sigma=3.5)"), std::string::npos) << inside;
  // The last step makes no further network call: caught by the check after sampling.
  const std::string last = error_of([&] { scoreflow::run_sampler(BlowUp(n - 1, false), model, job_on(kGrid)); });
  EXPECT_NE(last.find("in its last step (6 of 6, sigma 0.5 -> 0)"), std::string::npos) << last;
  // An initial state that is already infinite (sigma_0 * eps overflows float32).
  const std::string initial = error_of([&] { scoreflow::run_sampler(BlowUp(-1, false), model, job_on({1e39, 1, 0})); });
  EXPECT_NE(initial.find("the initial state is NaN or Inf"), std::string::npos) << initial;
  // A healthy run passes.
  EXPECT_EQ(error_of([&] { scoreflow::run_sampler(BlowUp(-1, false), model, job_on(kGrid)); }), "(no error)");
}

TEST(NumericsGuard, DeferredChecksWaitForTheirCadenceAndNameTheFirstBadCall) {
  auto model = scoreflow::open_model("builtin:gaussian:shape=1x4x4");
  Denoiser denoise(model);
  denoise.defer_checks(4);
  denoise.begin_steps("manual", 5);
  torch::Tensor x = torch::randn({2, 1, 4, 4});
  torch::Tensor bad = x.clone();
  bad[1][0][2][3] = std::numeric_limits<float>::quiet_NaN();
  denoise(x, 10.0);  // call 1, step 1
  denoise.step_done(0);
  denoise(x, 5.0);  // call 2, step 2
  denoise.step_done(1);
  EXPECT_NO_THROW(denoise(bad, 2.0)) << "call 3 synchronised with the host before the cadence";
  denoise.step_done(2);
  const std::string err = error_of([&] { denoise(x, 1.0); });  // call 4: the cadence
  EXPECT_NE(err.find("the state became NaN or Inf in step 2 of 5 (it is non-finite entering step 3 at sigma=2)"),
            std::string::npos)
      << err;
  // At the end of a run (check_finite), a bad call before the cadence is found too.
  Denoiser again(model);
  again.defer_checks(32);
  again(x, 3.0);
  again(bad, 3.0);
  EXPECT_NE(error_of([&] { again.check_finite(); }).find("the denoiser's input is NaN or Inf at sigma=3"),
            std::string::npos);
}

TEST(NumericsGuard, DeferredChecksSeeInfinitiesAndNaNInEitherTensor) {
  // The deferred flags are the min and max of input and output per call: +Inf, -Inf and NaN must
  // each show, in the state (input) and in the network output.
  auto model = scoreflow::open_model("builtin:gaussian:shape=1x4x4");
  const float values[] = {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN()};
  torch::Tensor x = torch::randn({3, 1, 4, 4});
  for (float v : values) {
    Denoiser denoise(model);
    denoise.defer_checks(8);
    torch::Tensor bad = x.clone();
    bad[2][0][1][1] = v;
    denoise(x, 4.0);
    denoise(bad, 3.0);
    const std::string err = error_of([&] { denoise.check_finite(); });
    EXPECT_NE(err.find("the denoiser's input is NaN or Inf at sigma=3"), std::string::npos) << v << ": " << err;
  }
  // A finite state with huge values is not flagged (the flags are extremes, not sums).
  Denoiser big(model);
  big.defer_checks(8);
  big(x * 1e30f, 2.0);
  EXPECT_EQ(error_of([&] { big.check_finite(); }), "(no error)");
}

TEST(NumericsGuard, DeferredChecksLeaveAutogradThroughTheDenoiserWorking) {
  // LD3 differentiates through D on the GPU, where the checks are deferred: recording the extremes
  // of a state that requires grad must neither fail nor enter the graph.
  auto model = scoreflow::open_model("builtin:gaussian:shape=1x4x4");
  Denoiser denoise(model);
  denoise.defer_checks(8);
  torch::Tensor x = torch::randn({2, 1, 4, 4}).requires_grad_(true);
  torch::Tensor out;
  ASSERT_NO_THROW(out = denoise(x * 2.0, 3.0));
  out.sum().backward();
  // D is linear in x for the Gaussian oracle: the gradient of the sum is one number per element.
  EXPECT_TRUE(torch::allclose(x.grad(), torch::full_like(x, x.grad()[0][0][0][0].item<float>())));
  EXPECT_EQ(error_of([&] { denoise.check_finite(); }), "(no error)");
}

TEST(NumericsGuard, NetworkNaNBelowASigmaIsReportedAtTheFirstGridStepBelowIt) {
  // tests/data/bad corpus: eps = NaN for discrete timesteps below 500 (scripts/make_bad_inputs.py).
  auto model = scoreflow::open_model(std::string(SCOREFLOW_FIXTURE_DIR) + "/bad/models/forward_nan_below.pt");
  const std::vector<double> grid = {80, 40, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0};
  // Independent oracle: the first grid sigma where the network itself answers NaN.
  size_t first_bad = grid.size();
  for (size_t i = 0; i + 1 < grid.size() && first_bad == grid.size(); ++i)
    if (!torch::isfinite(model->denoise(torch::zeros({1, 1, 8, 8}), {grid[i]}, {})).all().item<bool>()) first_bad = i;
  ASSERT_LT(first_bad, grid.size() - 1) << "the fixture never returns NaN on this grid";
  ASSERT_GT(first_bad, 0u);
  const std::string err =
      error_of([&] { scoreflow::run_sampler(*scoreflow::make_sampler("euler"), model, job_on(grid)); });
  std::ostringstream want;
  want << "network output is NaN or Inf at sigma=" << grid[first_bad] << " (model ";
  EXPECT_NE(err.find(want.str()), std::string::npos) << err;
  std::ostringstream step;
  step << ", step " << first_bad + 1 << " of " << grid.size() - 1 << " of sampler euler)";
  EXPECT_NE(err.find(step.str()), std::string::npos) << err;

  // The CLI says the same in one error line.
  const std::string dir = ::testing::TempDir();
  scoreflow::testing_cli::Outcome r = scoreflow::testing_cli::run_cli(
      {"sample", "--model", std::string(SCOREFLOW_FIXTURE_DIR) + "/bad/models/forward_nan_below.pt", "--sampler",
       "euler", "--sigmas", "80,40,20,10,5,2,1,0.5,0.2,0.1", "--seeds", "0-2", "--npz", dir + "/nan_below.npz"},
      dir + "/nan_below");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err.rfind("error: " + want.str(), 0), 0u) << r.err;
  EXPECT_NE(r.err.find(step.str()), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/nan_below.npz"));
}
