// LD3: the differentiable student against the library's samplers, its gradient against finite
// differences, the search on the exact Gaussian ODE, and resuming (LD3 and GITS) through a memo that
// a "killed" run left behind; a resume with other settings is refused, naming the setting.
#include "scoreflow/ld3.h"

#include <gtest/gtest.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <map>

#include "scoreflow/error.h"
#include "scoreflow/jobs.h"
#include "scoreflow/registry.h"
#include "scoreflow/schedule_file.h"
#include "scoreflow/schedule_search.h"
#include "scoreflow/sigmas.h"
#include "tests/support/cli_run.h"

using namespace scoreflow;

namespace {

const char* const kGaussian = "builtin:gaussian:shape=3,mean=0.3,std=0.5";

/// A memo in memory; with `limit` ≥ 0 it "is killed" (throws Killed) instead of storing entry limit + 1.
struct Killed {};
struct MapMemo {
  std::map<std::string, torch::Tensor> stored;
  int limit = -1, saved = 0, loaded = 0;
  io::Memo memo() {
    return [this](const std::string& name, const std::function<torch::Tensor()>& compute) {
      if (auto it = stored.find(name); it != stored.end()) return ++loaded, it->second.clone();
      torch::Tensor t = compute().to(torch::kCPU).contiguous().clone();
      if (limit >= 0 && saved >= limit) throw Killed{};
      ++saved;
      stored[name] = t;
      return t;
    };
  }
};

torch::Tensor grid_tensor(const std::vector<double>& sigmas) { return torch::tensor(sigmas, torch::kFloat64); }

Ld3Options small_options(const Model& model) {
  Ld3Options o;
  o.teacher_sigmas = make_sigmas("karras", 40, model.metadata().schedule, KeyValueArgs(""));
  o.steps = 4;
  o.train_samples = 32;
  o.valid_samples = 16;
  o.iterations = 60;
  o.train_batch = 8;
  o.lr = 0.05;
  o.validate_every = 5;
  o.teacher_batch = 16;
  o.dtype = torch::kFloat64;
  return o;
}

}  // namespace

TEST(Ld3Student, EqualsTheLibrarySamplerOnTheSameGrid) {
  auto model = open_model("builtin:gmm:shape=2");  // a non-linear denoiser
  const auto& schedule = model->metadata().schedule;
  const std::vector<std::vector<double>> grids = {
      make_sigmas("karras", 6, schedule, KeyValueArgs("")),                   // ends in 0
      make_sigmas("logsnr", 5, schedule, KeyValueArgs(""), FinalStep::None),  // ends at σ_min
      make_sigmas("karras", 12, schedule, KeyValueArgs("")),                  // ≥ 10 steps: below10 rules
  };
  const std::vector<std::pair<std::string, std::string>> students = {
      {"euler", ""},       {"euler", "afs=true"},
      {"ipndm", ""},       {"ipndm", "max_order=2"},
      {"dpmpp_2m", ""},    {"dpmpp_2m", "lower_order_final=false"},
      {"unipc", ""},       {"unipc", "variant=bh1,order=3"},
      {"unipc", "order=1"}};
  torch::manual_seed(3);
  const torch::Tensor noise = torch::randn({5, 2}, torch::kFloat64);
  for (const auto& [name, args] : students)
    for (const auto& grid : grids) {
      const Ld3Student student(name, args);
      const torch::Tensor x = noise * grid[0];
      NoiseSource unused({0});
      const torch::Tensor want = student.sampler().sample(Denoiser(model), x, grid, unused);
      const torch::Tensor got = student.sample(Denoiser(model), x, grid_tensor(grid));
      const double scale = want.abs().max().item<double>();
      EXPECT_LT((got - want).abs().max().item<double>(), 1e-6 * std::max(1.0, scale))
          << name << ":" << args << " on " << grid.size() - 1 << " steps ending at " << grid.back();
    }
}

TEST(Ld3Student, RefusesSamplersAndArgsItHasNoStudentFor) {
  EXPECT_THROW(Ld3Student("heun"), Error);
  try {
    Ld3Student("ipndm_v");
    FAIL() << "ipndm_v has no student";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "sampler");
    EXPECT_NE(std::string(e.what()).find("valid: euler, ipndm, dpmpp_2m, unipc"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Ld3Student("dpmpp_2m", "thresholding=dynamic"), Error);
  EXPECT_THROW(Ld3Student("euler", "denoise_to_zero=true"), Error);
}

TEST(Ld3Student, GradientWithRespectToTheStepParametersMatchesFiniteDifferences) {
  auto model = open_model("builtin:gmm:shape=2");
  torch::manual_seed(5);
  const torch::Tensor x = torch::randn({6, 2}, torch::kFloat64) * 80.0, y = torch::randn({6, 2}, torch::kFloat64);
  const torch::Tensor xi0 = torch::tensor({0.3, -0.2, 0.1, 0.4, -0.1}, torch::kFloat64);
  for (const char* name : {"euler", "ipndm", "dpmpp_2m", "unipc"})
    for (FinalStep final : {FinalStep::Zero, FinalStep::None}) {
      const Ld3Student student(name);
      auto loss = [&](const torch::Tensor& xi) {
        const torch::Tensor out = student.sample(Denoiser(model), x, ld3_grid(xi, 80.0, 0.002, final));
        return (out - y).pow(2).mean();
      };
      torch::Tensor xi = xi0.clone().requires_grad_(true);
      loss(xi).backward();
      const torch::Tensor grad = xi.grad();
      torch::NoGradGuard no_grad;
      const double h = 1e-6;
      for (int64_t k = 0; k < xi0.size(0); ++k) {
        torch::Tensor up = xi0.clone(), down = xi0.clone();
        up[k] += h;
        down[k] -= h;
        const double fd = (loss(up).item<double>() - loss(down).item<double>()) / (2 * h);
        EXPECT_NEAR(grad[k].item<double>(), fd, 1e-5 * std::max(1.0, grad.norm().item<double>()))
            << name << " final " << final_step_name(final) << " parameter " << k;
      }
    }
}

// Data N(0.3, 0.25) per element: the PF-ODE from σ_max has the exact solution
// x(0) = μ + (x_T − μ)·s/sqrt(s² + σ_max²). LD3 for Euler at 4 steps must bring the student closer to it
// than its initial (log-uniform) grid, and keep the grid valid.
TEST(Ld3, OnTheExactGaussianOdeTheLearnedGridLowersEulersError) {
  auto model = open_model(kGaussian);
  const Ld3Options o = small_options(*model);
  const Ld3Student student("euler");
  auto teacher = make_sampler("heun");
  const Ld3Result r = search_ld3(model, student, *teacher, o);
  const double sigma_max = o.teacher_sigmas.front(), sigma_min = o.teacher_sigmas[o.teacher_sigmas.size() - 2];
  ASSERT_EQ(r.sigmas.size(), 5u);
  EXPECT_EQ(r.sigmas.front(), sigma_max);
  EXPECT_EQ(r.sigmas.back(), 0.0);
  for (size_t i = 0; i + 1 < r.sigmas.size(); ++i) EXPECT_LT(r.sigmas[i + 1], r.sigmas[i]);
  EXPECT_GT(r.sigmas[3], sigma_min);
  EXPECT_LT(r.valid_loss, 0.5 * r.initial_valid_loss);
  auto exact_error = [&](const std::vector<double>& grid) {
    std::vector<uint64_t> seeds;
    for (uint64_t s = 1000; s < 1064; ++s) seeds.push_back(s);
    NoiseSource noise(seeds);
    const torch::Tensor x = noise.randn({3}).to(torch::kFloat64) * sigma_max;
    const torch::Tensor out = student.sampler().sample(Denoiser(model), x, grid, noise);
    const torch::Tensor exact = 0.3 + (x - 0.3) * (0.5 / std::sqrt(0.25 + sigma_max * sigma_max));
    return (out - exact).pow(2).mean().item<double>();
  };
  const double before = exact_error(r.initial_sigmas), after = exact_error(r.sigmas);
  EXPECT_LT(after, 0.5 * before) << "initial grid error " << before << ", learned " << after;
}

TEST(Ld3, FinalNoneKeepsSigmaMinAndTheBallMovesOnlyInsideIt) {
  auto model = open_model(kGaussian);
  Ld3Options o = small_options(*model);
  o.final = FinalStep::None;
  o.iterations = 10;
  o.ball = 0.05;
  const Ld3Student student("dpmpp_2m");
  auto teacher = make_sampler("heun");
  const Ld3Result r = search_ld3(model, student, *teacher, o);
  ASSERT_EQ(r.sigmas.size(), 5u);
  EXPECT_EQ(r.sigmas.back(), o.teacher_sigmas[o.teacher_sigmas.size() - 2]);
  EXPECT_LE(r.valid_loss, r.initial_valid_loss);
}

TEST(Ld3, ResumedSearchEqualsAnUninterruptedOne) {
  auto model = open_model(kGaussian);
  Ld3Options o = small_options(*model);
  o.iterations = 20;
  o.ball = 0.05;  // the moved noises are part of a checkpoint
  const Ld3Student student("ipndm");
  auto teacher = make_sampler("heun");
  const Ld3Result whole = search_ld3(model, student, *teacher, o);
  MapMemo memo;
  memo.limit = 6;  // 3 teacher blocks and checkpoints 0, 5, 10 stored, killed storing 15
  EXPECT_THROW(search_ld3(model, student, *teacher, o, memo.memo()), Killed);
  memo.limit = -1;
  const Ld3Result resumed = search_ld3(model, student, *teacher, o, memo.memo());
  EXPECT_EQ(resumed.resumed, 6);
  EXPECT_EQ(resumed.sigmas, whole.sigmas);
  EXPECT_EQ(resumed.valid_loss, whole.valid_loss);
  EXPECT_EQ(resumed.initial_valid_loss, whole.initial_valid_loss);
  EXPECT_EQ(resumed.best_iteration, whole.best_iteration);
}

TEST(Gits, ResumedCostMatrixEqualsAnUninterruptedOne) {
  auto model = open_model(kGaussian);
  GitsOptions o;
  o.candidates = make_sigmas("karras", 8, model->metadata().schedule, KeyValueArgs(""));
  o.steps = 3;
  o.warmup = 40;
  o.batch = 8;
  auto student = make_sampler("ipndm"), teacher = make_sampler("heun");
  const StepCostMatrix whole = gits_cost_matrix(model, *student, *teacher, o);
  MapMemo memo;
  memo.limit = 2;
  EXPECT_THROW(gits_cost_matrix(model, *student, *teacher, o, {}, memo.memo()), Killed);
  memo.limit = -1;
  int64_t reported = 0;
  const StepCostMatrix resumed = gits_cost_matrix(
      model, *student, *teacher, o, [&](int64_t done, int64_t) { reported = done; }, memo.memo());
  EXPECT_EQ(memo.loaded, 2);
  EXPECT_EQ(reported, o.warmup);
  const int64_t M = static_cast<int64_t>(o.candidates.size()) - 1;
  for (int64_t i = 1; i <= M; ++i)
    for (int64_t j = i + 1; j <= M + 1; ++j) EXPECT_EQ(resumed(i, j), whole(i, j)) << i << " -> " << j;
}

TEST(SearchResume, AChangedSettingIsRefusedNamingIt) {
  auto model = open_model(kGaussian);
  const std::string dir = testing_cli::fresh_dir("search_resume") + "/sched.json.parts";
  auto student = make_sampler("euler"), teacher = make_sampler("heun");
  GitsOptions g;
  g.candidates = make_sigmas("karras", 8, model->metadata().schedule, KeyValueArgs(""));
  g.warmup = 16;
  {
    io::ChunkStore store(dir, jobs::gits_settings(*model, *student, "", *teacher, g), false, "--out");
    store.save("gits-batch-0", io::from_tensor(torch::zeros({4}, torch::kFloat64)));
  }
  GitsOptions other = g;
  other.warmup = 32;
  try {
    io::ChunkStore store(dir, jobs::gits_settings(*model, *student, "", *teacher, other), false, "--out");
    FAIL() << "a resume with another warmup was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("warmup"), std::string::npos) << e.what();
  }
  const Ld3Student ld3_student("euler");
  Ld3Options l = small_options(*model);
  const std::string dir2 = dir + "2";
  {
    io::ChunkStore store(dir2, jobs::ld3_settings(*model, ld3_student, *teacher, l), false, "--out");
    store.save("ld3-iter-0", io::from_tensor(torch::zeros({4}, torch::kFloat64)));
  }
  l.lr = 0.1;
  try {
    io::ChunkStore store(dir2, jobs::ld3_settings(*model, ld3_student, *teacher, l), false, "--out");
    FAIL() << "a resume with another lr was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lr"), std::string::npos) << e.what();
  }
}

// The command line: a search killed with SIGKILL (the chunk store's test hook) and started again with
// the same command writes the grid an uninterrupted search finds.
TEST(SearchScheduleCli, Ld3KilledAndRestartedWritesTheUninterruptedGrid) {
  const std::string dir = testing_cli::fresh_dir("ld3_cli");
  auto args = [&](const std::string& out, const std::string& lr) {
    return std::vector<std::string>{"search-schedule",
                                    "--method",
                                    "ld3",
                                    "--model",
                                    kGaussian,
                                    "--sampler",
                                    "euler",
                                    "--nfe",
                                    "3",
                                    "--teacher",
                                    "heun:20",
                                    "--warmup",
                                    "16",
                                    "--valid",
                                    "8",
                                    "--batch",
                                    "8",
                                    "--iterations",
                                    "6",
                                    "--train-batch",
                                    "4",
                                    "--validate-every",
                                    "2",
                                    "--lr",
                                    lr,
                                    "--out",
                                    out};
  };
  // 3 teacher blocks and checkpoints 0 and 2 stored, then killed.
  const testing_cli::Outcome killed =
      testing_cli::run_cli(args(dir + "/run.json", "0.05"), dir + "/killed", {"SCOREFLOW_TEST_KILL_AFTER_CHUNKS=5"});
  ASSERT_EQ(killed.signal, SIGKILL) << "exit " << killed.code << ": " << killed.err;
  const testing_cli::Outcome resumed = testing_cli::run_cli(args(dir + "/run.json", "0.05"), dir + "/resumed");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resumed"), std::string::npos) << resumed.err;
  // The uninterrupted search, in process with the command's settings (float32 state).
  auto model = open_model(kGaussian);
  Ld3Options o;
  o.teacher_sigmas = make_sigmas("karras", 20, model->metadata().schedule, KeyValueArgs(""));
  o.steps = 3;
  o.train_samples = 16;
  o.valid_samples = 8;
  o.teacher_batch = 8;
  o.iterations = 6;
  o.train_batch = 4;
  o.validate_every = 2;
  o.lr = 0.05;
  auto teacher = make_sampler("heun");
  const Ld3Result whole = search_ld3(model, Ld3Student("euler"), *teacher, o);
  std::vector<double> want = whole.sigmas;
  EXPECT_EQ(load_schedule_file(dir + "/run.json").sigmas, want);
  EXPECT_FALSE(std::filesystem::exists(dir + "/run.json.parts"));
}
