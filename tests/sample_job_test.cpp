// The library half of every sampling command's flags: load_init_noise (run.h) reads and checks an
// --init-noise file, jobs::choose_grid (jobs.h) picks the σ grid from plain settings. Expected
// values come from the formulas and counts the papers give, not from the code under test.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "scoreflow/builtin.h"
#include "scoreflow/error.h"
#include "scoreflow/jobs.h"
#include "scoreflow/npy.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "tests/support/io_test_util.h"

namespace scoreflow {
namespace {
using testing_io::expect_error;

class LoadInitNoise : public testing_io::TempDirTest {
 protected:
  std::string write(const torch::Tensor& noise, const std::string& name = "noise") {
    const std::string file = path(name + ".npz");
    io::write_npz(file, {{name, io::from_tensor(noise)}});
    return file;
  }
  const std::vector<int64_t> shape_{1, 4, 4};
};

TEST_F(LoadInitNoise, Float64DrawsAreAcceptedAsWritten) {
  const torch::Tensor draws = torch::randn({3, 1, 4, 4}, torch::kFloat64);
  const torch::Tensor loaded = load_init_noise(write(draws), 3, shape_);
  EXPECT_EQ(loaded.sizes(), draws.sizes());
  EXPECT_TRUE(torch::equal(loaded.to(torch::kFloat64), draws));
}

TEST_F(LoadInitNoise, AWrongShapeIsRefusedNamingBothShapes) {
  const std::string file = write(torch::randn({2, 1, 4, 4}));
  expect_error([&] { load_init_noise(file, 3, shape_); },
               {"init_noise " + file, "array 'noise' has shape [2, 1, 4, 4], expected [3, 1, 4, 4]"});
  const std::string narrow = write(torch::randn({3, 1, 4, 2}), "noise");
  expect_error([&] { load_init_noise(narrow, 3, shape_); }, {"has shape [3, 1, 4, 2], expected [3, 1, 4, 4]"});
}

TEST_F(LoadInitNoise, IntegersMissingArraysAndNonFiniteValuesAreRefused) {
  expect_error(
      [&] {
        load_init_noise(write(torch::zeros({3, 1, 4, 4}, torch::kLong)), 3, shape_);
      },
      {"array 'noise' has dtype <i8", "must be floating point"});
  expect_error([&] { load_init_noise(write(torch::randn({3, 1, 4, 4}), "eps"), 3, shape_); }, {"has no array 'noise'"});
  torch::Tensor bad = torch::randn({3, 1, 4, 4});
  bad[1][0][2][3] = std::numeric_limits<float>::infinity();
  expect_error([&] { load_init_noise(write(bad), 3, shape_); }, {"array 'noise' has NaN or Inf values"});
}

TEST_F(LoadInitNoise, ErrorsNameTheFieldForTheCallerToSpell) {
  try {
    load_init_noise(write(torch::randn({2, 1, 4, 4})), 3, shape_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "init_noise");
  }
}

/// Karras et al. (2022), eq. 5: σ_i = (σ_max^(1/ρ) + i/(N-1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ, then 0.
std::vector<double> karras(int steps, double lo, double hi, double rho = 7) {
  std::vector<double> s;
  for (int i = 0; i < steps; ++i) {
    const double a = std::pow(hi, 1 / rho), b = std::pow(lo, 1 / rho);
    s.push_back(std::pow(a + i / double(steps - 1) * (b - a), rho));
  }
  s.push_back(0);
  return s;
}

void expect_near_grid(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-9 * (1 + want[i])) << i;
}

TEST(ChooseGrid, AScheduleGivesItsOwnGridForTheStepsAsked) {
  auto model = make_builtin("builtin:gaussian:shape=2");
  auto euler = make_sampler("euler", "");
  const double lo = model->metadata().schedule.sigma_min(), hi = model->metadata().schedule.sigma_max();
  jobs::GridChoice choice;
  choice.steps = 6;
  const jobs::ChosenGrid grid = jobs::choose_grid(choice, *model, *euler, "", FinalStep::Zero);
  EXPECT_EQ(grid.source, "schedule");
  expect_near_grid(grid.sigmas, karras(6, lo, hi));
  choice.steps = -1;  // neither steps nor nfe: the default count
  choice.default_steps = 9;
  expect_near_grid(jobs::choose_grid(choice, *model, *euler, "", FinalStep::Zero).sigmas, karras(9, lo, hi));
  choice.schedule_args = "rho=3";
  expect_near_grid(jobs::choose_grid(choice, *model, *euler, "", FinalStep::Zero).sigmas, karras(9, lo, hi, 3));
}

TEST(ChooseGrid, AnNfeBudgetBecomesTheSamplersSteps) {
  auto model = make_builtin("builtin:gaussian:shape=2");
  jobs::GridChoice choice;
  choice.nfe = 9;
  // Heun (Karras et al. 2022, Alg. 1): 2 network calls per step, 1 for the last step into 0.
  const jobs::ChosenGrid heun = jobs::choose_grid(choice, *model, *make_sampler("heun", ""), "", FinalStep::Zero);
  EXPECT_EQ(heun.nfe_steps, 5);
  EXPECT_EQ(heun.sigmas.size(), 6u);
  // Euler: one call per step.
  EXPECT_EQ(jobs::choose_grid(choice, *model, *make_sampler("euler", ""), "", FinalStep::Zero).sigmas.size(), 10u);
}

TEST(ChooseGrid, ExplicitSigmasEndInZeroOnlyUnderFinalZero) {
  auto model = make_builtin("builtin:gaussian:shape=2");
  auto euler = make_sampler("euler", "");
  jobs::GridChoice choice;
  choice.sigmas = {80, 10, 1};
  jobs::ChosenGrid grid = jobs::choose_grid(choice, *model, *euler, "", FinalStep::Zero);
  EXPECT_EQ(grid.source, "sigmas");
  EXPECT_EQ(grid.sigmas, (std::vector<double>{80, 10, 1, 0}));
  EXPECT_EQ(jobs::choose_grid(choice, *model, *euler, "", FinalStep::None).sigmas, (std::vector<double>{80, 10, 1}));
  choice.steps = 3;  // agrees with the list
  EXPECT_NO_THROW(jobs::choose_grid(choice, *model, *euler, "", FinalStep::Zero));
}

TEST(ChooseGrid, ConflictsAreRefusedNamingTheFields) {
  auto model = make_builtin("builtin:gaussian:shape=2");
  auto euler = make_sampler("euler", "");
  jobs::GridChoice both;
  both.steps = 4;
  both.nfe = 4;
  expect_error([&] { jobs::choose_grid(both, *model, *euler, "", FinalStep::Zero); }, {"give steps or nfe, not both"});
  jobs::GridChoice mismatch;
  mismatch.sigmas = {80, 10, 1};
  mismatch.steps = 5;
  expect_error([&] { jobs::choose_grid(mismatch, *model, *euler, "", FinalStep::Zero); },
               {"sigmas gives 3 steps but steps/nfe asks for 5"});
  jobs::GridChoice two;
  two.sigmas = {80, 1};
  two.trajectory = "even";
  expect_error([&] { jobs::choose_grid(two, *model, *euler, "", FinalStep::Zero); },
               {"give trajectory or sigmas, not both"});
  jobs::GridChoice zero;
  zero.steps = 0;
  expect_error([&] { jobs::choose_grid(zero, *model, *euler, "", FinalStep::Zero); },
               {"steps must be in [1, 100000], got 0"});
  try {
    jobs::choose_grid(both, *model, *euler, "", FinalStep::Zero);
  } catch (const Error& e) {
    EXPECT_EQ(e.spelled([](const std::string& f) { return "--" + f; }), "give --steps or --nfe, not both");
  }
}

TEST(ChooseGrid, FinalNoneNeedsAGridEndingAboveZero) {
  auto model = make_builtin("builtin:gaussian:shape=2");
  jobs::GridChoice choice;
  choice.sigmas = {80, 10, 0};
  EXPECT_THROW(jobs::choose_grid(choice, *model, *make_sampler("euler", ""), "", FinalStep::None), Error);
}

}  // namespace
}  // namespace scoreflow
