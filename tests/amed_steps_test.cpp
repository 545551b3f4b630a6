// AMED's bases and teachers (samplers/amed_steps.cpp) against the real samplers, which are built
// from the same step primitives (samplers/steps.h): a plugin with r = 1/2, c = 1, a = 1 is its base
// solver on the grid with the geometric midpoints inserted, and a teacher's states are the
// sampler's trajectory on the fine grid.
#include "samplers/amed_steps.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "scoreflow/builtin.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"
#include "scoreflow/sigmas.h"

using namespace scoreflow;

namespace {

const char* const kGmm = "builtin:gmm:shape=2";

/// The positive part of a karras grid of `steps` steps for the model.
std::vector<double> positive_grid(const Model& model, int steps) {
  std::vector<double> sigmas = make_sigmas("karras", steps, model.metadata().schedule, KeyValueArgs(""));
  if (sigmas.back() == 0) sigmas.pop_back();
  return sigmas;
}

double max_rel(const torch::Tensor& got, const torch::Tensor& want) {
  return ((got - want).abs().max() / want.abs().max()).item<double>();
}

}  // namespace

TEST(AmedSteps, PluginAtHalfIsItsBaseOnTheMidpointGrid) {
  auto model = make_builtin(kGmm);
  const std::vector<double> grid = positive_grid(*model, 6);
  // The midpoint s = σ'^r σ^{1−r} at r = 1/2, written as amed_steps.cpp does.
  std::vector<double> refined{grid[0]};
  for (size_t i = 0; i + 1 < grid.size(); ++i) {
    refined.push_back(std::pow(grid[i + 1], 0.5) * std::pow(grid[i], 0.5));
    refined.push_back(grid[i + 1]);
  }
  const torch::Tensor x0 = NoiseSource({5, 6, 7}).randn({2}).to(torch::kFloat64) * grid[0];
  for (const auto& [base, sampler, args] : std::vector<std::array<std::string, 3>>{
           {"euler", "euler", ""}, {"ipndm", "ipndm", ""}, {"dpmpp_2m", "dpmpp_2m", "lower_order_final=always"}}) {
    NoiseSource noise({0});
    const torch::Tensor plugin =
        make_sampler("amed_plugin", "base=" + base + ",r=0.5,c=1,a=1")->sample(Denoiser(model), x0, grid, noise);
    const torch::Tensor real = make_sampler(sampler, args)->sample(Denoiser(model), x0, refined, noise);
    EXPECT_LT(max_rel(plugin, real), 1e-12) << base;
    // c scales the second sub-step: c = 1/2 is another method.
    const torch::Tensor half =
        make_sampler("amed_plugin", "base=" + base + ",r=0.5,c=0.5,a=1")->sample(Denoiser(model), x0, grid, noise);
    EXPECT_GT(max_rel(half, real), 1e-6) << base;
  }
}

TEST(AmedSteps, TeacherStatesAreTheSamplersTrajectory) {
  auto model = make_builtin(kGmm);
  const int stride = 3;
  const std::vector<double> fine = positive_grid(*model, 4 * stride + 1);  // 4 student intervals
  ASSERT_EQ(fine.size(), size_t(4 * stride + 1));
  const torch::Tensor x0 = NoiseSource({8, 9}).randn({2}) * fine[0];
  const Denoiser denoise(model);
  NoiseSource noise({0});
  for (const auto& [teacher, args] : std::vector<std::array<std::string, 2>>{
           {"heun", ""}, {"ipndm", "max_order=4"}, {"dpmpp_2m", "lower_order_final=always"}}) {
    const std::vector<torch::Tensor> states = amed::teacher_states(teacher, denoise, x0, fine, stride);
    ASSERT_EQ(states.size(), 4u) << teacher;
    // The whole fine grid: the same computation, bit for bit.
    const torch::Tensor whole = make_sampler(teacher, args)->sample(denoise, x0, fine, noise);
    EXPECT_TRUE(torch::equal(states.back(), whole)) << teacher << ": " << max_rel(states.back(), whole);
    // Heun and iPNDM do not look ahead, so each state is the sampler's result on the grid up to it
    // (DPM-Solver++ would lower its order at the prefix's end).
    if (teacher == "dpmpp_2m") continue;
    for (int k = 0; k < 4; ++k) {
      const std::vector<double> prefix(fine.begin(), fine.begin() + (k + 1) * stride + 1);
      EXPECT_TRUE(torch::equal(states[k], make_sampler(teacher, args)->sample(denoise, x0, prefix, noise)))
          << teacher << " state " << k;
    }
  }
  EXPECT_THROW(amed::teacher_states("euler", denoise, x0, fine, stride), Error);
}
