// The 2024–25 σ grids (ays, kl_optimal, beta) and k-diffusion's polyexponential and vp, against the
// peers' own functions run by scripts/gen_schedule_reference.py (k-diffusion, ComfyUI, diffusers; all
// in double there, see the script), committed as tests/data/schedule_reference.json.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "scoreflow/error.h"
#include "scoreflow/schedule.h"
#include "scoreflow/sigmas.h"

using namespace scoreflow;

namespace {

NoiseSchedule reference_schedule(const std::string& name) {
  if (name == "edm") return NoiseSchedule::edm(0.002, 80);
  if (name == "sd") return NoiseSchedule::vp_discrete("scaled_linear", 0.00085, 0.012, 1000);
  if (name == "ddpm") return NoiseSchedule::vp_discrete("linear", 1e-4, 0.02, 1000);
  if (name == "vp_linear") return NoiseSchedule::vp_linear(0.1, 20.0);
  fail("reference schedule '", name, "' unknown to the test");
}

}  // namespace

TEST(ScheduleGrids, MatchThePeersOwnFunctions) {
  std::ifstream in(std::string(SCOREFLOW_SOURCE_DIR) + "/tests/data/schedule_reference.json");
  ASSERT_TRUE(in) << "tests/data/schedule_reference.json missing";
  const nlohmann::json doc = nlohmann::json::parse(in);
  std::map<std::string, int> per_grid;
  for (const auto& c : doc["cases"]) {
    const std::string grid = c["grid"], args = c["args"], schedule = c["schedule"];
    const int steps = c["steps"];
    const auto want = c["sigmas"].get<std::vector<double>>();
    const auto got = make_sigmas(grid, steps, reference_schedule(schedule), KeyValueArgs(args, "schedule arg"));
    ASSERT_EQ(got.size(), want.size()) << grid << " " << args << " steps " << steps << " on " << schedule;
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(got[i], want[i], 1e-12 * std::abs(want[i])) << grid << " " << args << " steps " << steps << " on "
                                                              << schedule << " at " << i << " (" << c["source"] << ")";
    ++per_grid[grid.substr(0, grid.find(':'))];
  }
  EXPECT_EQ(per_grid["polyexponential"], 4);
  EXPECT_EQ(per_grid["vp"], 2);
  EXPECT_EQ(per_grid["kl_optimal"], 3);
  EXPECT_EQ(per_grid["ays"], 15);
  EXPECT_EQ(per_grid["beta"], 10);
}

TEST(ScheduleGrids, AysTakesTheModelAsSuffixOrArgOnce) {
  const NoiseSchedule edm = NoiseSchedule::edm();
  EXPECT_EQ(make_sigmas("ays:sdxl", 10, edm, KeyValueArgs("")),
            make_sigmas("ays", 10, edm, KeyValueArgs("model=sdxl")));
  EXPECT_THROW(make_sigmas("ays", 10, edm, KeyValueArgs("")), Error);
  EXPECT_THROW(make_sigmas("ays:sd3", 10, edm, KeyValueArgs("")), Error);
  EXPECT_THROW(make_sigmas("ays:sd15", 10, edm, KeyValueArgs("model=sd15")), Error);
  try {
    make_sigmas("ays:sd3", 10, edm, KeyValueArgs(""));
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("valid: sd15, sdxl, svd"), std::string::npos) << e.what();
  }
}

TEST(ScheduleGrids, BetaOneOneIsTimeUniformAndRepeatsAreRefused) {
  // Beta(1, 1) quantiles are the fractions themselves: the time-uniform grid of the schedule.
  const NoiseSchedule vp = NoiseSchedule::vp_linear();
  const auto beta = make_sigmas("beta", 7, vp, KeyValueArgs("alpha=1,beta=1"));
  const auto uniform = make_sigmas("time_uniform", 7, vp, KeyValueArgs(""));
  ASSERT_EQ(beta.size(), uniform.size());
  for (size_t i = 0; i < beta.size(); ++i) EXPECT_NEAR(beta[i], uniform[i], 1e-12 * uniform[i]);
  // 900 of 1000 timesteps cannot all be distinct quantiles of Beta(0.6, 0.6).
  const NoiseSchedule sd = NoiseSchedule::vp_discrete("scaled_linear", 0.00085, 0.012, 1000);
  EXPECT_THROW(make_sigmas("beta", 900, sd, KeyValueArgs("")), Error);
  EXPECT_THROW(make_sigmas("beta", 5, sd, KeyValueArgs("alpha=0")), Error);
}

TEST(ScheduleGrids, NewGridsAreListedDescendingAndEndInZero) {
  std::vector<std::string> names;
  for (const GridInfo& g : grid_names()) names.push_back(g.name);
  for (const char* want : {"ays", "kl_optimal", "beta", "polyexponential", "vp"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  const NoiseSchedule edm = NoiseSchedule::edm();
  for (const char* grid : {"ays:sd15", "kl_optimal", "beta", "polyexponential", "vp"})
    for (int steps : {1, 2, 5, 18}) {
      const auto s = make_sigmas(grid, steps, edm, KeyValueArgs(""));
      ASSERT_EQ(s.size(), static_cast<size_t>(steps + 1)) << grid;
      EXPECT_EQ(s.back(), 0.0) << grid;
      for (int i = 0; i < steps; ++i) EXPECT_GT(s[i], s[i + 1]) << grid << " steps " << steps << " at " << i;
    }
}
