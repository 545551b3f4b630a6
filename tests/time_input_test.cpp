// Discrete-time conventions of time_input (models/schedule.cpp network_time): k-diffusion's
// quantize=True / diffusers' integer timesteps (index_quantized) and the official DPM-Solver's
// discrete wrapper (dpm_solver), checked against numbers its own code computed
// (scripts/gen_time_input_reference.py → tests/data/time_input_reference.json).
#include <gtest/gtest.h>
#include <torch/script.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "scoreflow/error.h"
#include "scoreflow/model.h"
#include "scoreflow/sigmas.h"

using namespace scoreflow;

namespace {

/// A vp_discrete (linear 1e-4..0.02, N = 1000) x0-network whose output is its time input t, so that
/// D(x, σ) is what the network was given. Shape [1].
std::shared_ptr<Model> recorder(const std::string& time_input) {
  torch::jit::Module m("Recorder");
  m.define("def forward(self, x, t):\n    return t.view(-1, 1).to(x.dtype) + 0.0 * x\n");
  const std::string path = ::testing::TempDir() + "/time_recorder_" + time_input + ".pt";
  m.save(path, {{"scoreflow.json", R"({"prediction": "x0", "schedule": {"type": "vp_discrete", "betas": "linear",
    "beta_start": 1e-4, "beta_end": 0.02, "num_train_steps": 1000}, "time_input": ")" +
                                       time_input + R"(", "shape": [1]})"}});
  return open_model(path);
}

/// σ_n = sqrt((1 − ᾱ_n)/ᾱ_n) of the linear chain, computed here from the betas.
std::vector<double> chain_sigmas() {
  std::vector<double> s;
  double log_ab = 0;
  for (int n = 0; n < 1000; ++n) {
    log_ab += std::log1p(-(1e-4 + (0.02 - 1e-4) * n / 999.0));
    s.push_back(std::sqrt(std::expm1(-log_ab)));
  }
  return s;
}

}  // namespace

TEST(TimeInput, QuantizedGivesTheNetworkTheNearestIntegerTimestep) {
  auto model = recorder("index_quantized");
  const std::vector<double> chain = chain_sigmas();
  std::vector<double> sigmas = {1e-4, 0.0101, 0.02, 0.3, 1.0, 2.7, 9.5, 80.0, 156.0, 400.0};
  for (int n : {0, 1, 17, 500, 998, 999}) sigmas.push_back(chain[n]);
  for (double sigma : sigmas) {
    const double t = Denoiser(model)(torch::zeros({2, 1}), sigma)[0][0].item<double>();
    EXPECT_EQ(t, std::round(t)) << "sigma " << sigma;
    // argmin over the chain of |log σ − log σ_n| (k-diffusion's DiscreteSchedule.sigma_to_t).
    int best = 0;
    for (int n = 1; n < 1000; ++n)
      if (std::abs(std::log(sigma) - std::log(chain[n])) < std::abs(std::log(sigma) - std::log(chain[best]))) best = n;
    EXPECT_EQ(t, best) << "sigma " << sigma;
  }
  // diffusers' spacings put every grid point on a training timestep: the network gets exactly those.
  const NoiseSchedule& schedule = model->metadata().schedule;
  const std::vector<int> steps = discrete_timesteps("trailing", 10, 1000);
  const std::vector<double> grid = make_sigmas("trailing", 10, schedule, KeyValueArgs(""));
  for (size_t i = 0; i < steps.size(); ++i)
    EXPECT_EQ(network_time(schedule, TimeInput::IndexQuantized, grid[i]), steps[i]) << i;
}

TEST(TimeInput, DpmSolverConventionMatchesTheOfficialCode) {
  std::ifstream in(std::string(SCOREFLOW_SOURCE_DIR) + "/tests/data/time_input_reference.json");
  ASSERT_TRUE(in) << "tests/data/time_input_reference.json missing";
  const nlohmann::json doc = nlohmann::json::parse(in);
  int checked = 0;
  for (const auto& c : doc["cases"]) {
    const NoiseSchedule schedule =
        NoiseSchedule::vp_discrete(c["betas"].get<std::string>(), c["beta_start"].get<double>(),
                                   c["beta_end"].get<double>(), c["num_train_steps"].get<int>());
    const auto sigmas = c["sigmas"].get<std::vector<double>>();
    const auto want = c["t_input"].get<std::vector<double>>();
    for (size_t i = 0; i < sigmas.size(); ++i, ++checked)
      EXPECT_NEAR(network_time(schedule, TimeInput::DpmSolver, sigmas[i]), want[i], 1e-6)
          << c["betas"] << " N=" << c["num_train_steps"] << " sigma " << sigmas[i];
  }
  EXPECT_EQ(checked, 52);
  // The value reaches the network (float32).
  auto model = recorder("dpm_solver");
  const double t = Denoiser(model)(torch::zeros({1, 1}), 1.0)[0][0].item<double>();
  EXPECT_NEAR(t, doc["cases"][0]["t_input"][6].get<double>(), 1e-4);
}

TEST(TimeInput, DiscreteConventionsNeedAVpDiscreteSchedule) {
  const std::string edm = R"({"prediction": "x0", "schedule": {"type": "edm"}, "shape": [1], "time_input": ")";
  for (const std::string name : {"index_quantized", "dpm_solver"}) {
    EXPECT_EQ(time_input_name(parse_time_input(name)), name);
    try {
      resolve_metadata(edm + name + "\"}", "", {}, "m");
      FAIL() << name;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'" + name + "' but the schedule is edm"), std::string::npos) << e.what();
    }
  }
  // --meta time_input=... overrides an archive's field.
  EXPECT_EQ(resolve_metadata(R"({"prediction": "eps", "schedule": {"type": "vp_discrete"}, "shape": [1],
    "time_input": "index"})",
                             "", {"time_input=dpm_solver"}, "m")
                .time_input,
            TimeInput::DpmSolver);
  try {
    parse_time_input("quantized");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("valid: index, index_quantized, dpm_solver"), std::string::npos) << e.what();
  }
}
