// The CPU fast path of TorchScript networks (LoadOptions::optimize): the frozen, inference-optimised
// module (and the fused one, where LibTorch has oneDNN Graph fusion) gives the plain module's
// outputs to 1e-4 relative on the same noise, keeps the methods
// scoreflow calls (the SN-DPM head through forward, AMED features), is cached and reused, steps
// aside when its probe disagrees, serves the batches that timing at load found it faster for (a choice
// stored once per machine), and `--no-optimize` turns it off.
#include "scoreflow/cpu_fast_path.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/version.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "models/aoti_model.h"
#include "models/cpu_optimize.h"
#include "models/cpu_teams.h"
#include "models/group_norm_silu.h"
#include "models/winograd_conv.h"
#include "scoreflow/error.h"
#include "scoreflow/model.h"
#include "scoreflow/model_info.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "scoreflow/sigmas.h"
#include "tests/support/cli_run.h"
#include "tests/support/error_text.h"
#include "tests/support/thread_count.h"

using namespace scoreflow;
using testing_support::ThreadCount;

namespace {

const std::string kFixtures = SCOREFLOW_FIXTURE_DIR;

/// A fresh, empty cache folder for one test.
std::string fresh_cache(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/cpu_cache_" + name + "_" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  return dir;
}

LoadOptions optimized(const std::string& cache_dir) {
  LoadOptions load;
  load.optimize = true;
  load.cache_dir = cache_dir;
  return load;
}

double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kFloat64) - b.to(torch::kFloat64)).norm() / b.to(torch::kFloat64).norm()).item<double>();
}

/// A conv network with the SN-DPM head (eps2: forward returns [ε̂, ĥ], twice the channels) and an
/// AMED features method, written in C++ and saved with its metadata.
std::string head_and_features_model() {
  torch::jit::Module m("HeadNet");
  torch::manual_seed(3);
  m.register_parameter("w", torch::randn({4, 1, 3, 3}) * 0.4, false);
  m.register_parameter("b", torch::randn({4}) * 0.1, false);
  m.register_parameter("w2", torch::randn({2, 4, 3, 3}) * 0.3, false);
  m.define(R"(
def features(self, x, t):
    return torch.silu(torch.group_norm(torch.conv2d(x, self.w, self.b, [1, 1], [1, 1]), 2, None, None, 1e-5))

def forward(self, x, t):
    h = self.features(x, t) * (1.0 + t / 1000.0).view(-1, 1, 1, 1)
    out = torch.conv2d(h, self.w2, None, [1, 1], [1, 1])
    return torch.cat([out[:, :1], out[:, 1:] * out[:, 1:]], 1)
)");
  m.eval();
  const std::string path = ::testing::TempDir() + "/cpu_head_net_" + std::to_string(getpid()) + ".pt";
  m.save(path, {{"scoreflow.json", R"({"prediction":"eps","schedule":{"type":"vp_discrete","betas":"linear",
      "beta_start":1e-4,"beta_end":0.02,"num_train_steps":1000},"time_input":"index","shape":[1,8,8],
      "head":"eps2","features":"features"})"}});
  return path;
}

/// Whether this CPU has the AVX-512 subsets oneDNN's Winograd kernels need (Linux /proc/cpuinfo).
bool has_avx512_core() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    line += " ";
    for (const char* flag : {" avx512f ", " avx512bw ", " avx512vl ", " avx512dq "})
      if (line.find(flag) == std::string::npos) return false;
    return true;
  }
  return false;
}

/// While it lives, scoreflow's oneDNN convolutions (the 3x3 ones, the 1x1 ones) fail as they did inside
/// PyTorch 2.11's LibTorch.
struct FailingOneDnnConvolutions {
  explicit FailingOneDnnConvolutions(bool winograd = true, bool pointwise = true, bool products = false,
                                     bool fast_libtorch_products = false) {
    scoreflow::detail::fail_onednn_convolutions_for_testing(winograd, pointwise, products);
    scoreflow::detail::assume_fast_libtorch_products_for_testing(fast_libtorch_products);
  }
  ~FailingOneDnnConvolutions() {
    scoreflow::detail::fail_onednn_convolutions_for_testing(false, false);
    scoreflow::detail::assume_fast_libtorch_products_for_testing(false);
  }
  FailingOneDnnConvolutions(const FailingOneDnnConvolutions&) = delete;
  FailingOneDnnConvolutions& operator=(const FailingOneDnnConvolutions&) = delete;
};

}  // namespace

TEST(CpuFastPath, SamplesMatchThePlainModuleOnTheSameNoise) {
  const std::string path = kFixtures + "/tiny_eps.pt";
  auto plain = open_model(path);
  auto fast = open_model(path, "", {}, torch::kCPU, optimized(fresh_cache("samples")));
  ASSERT_TRUE(cpu_optimization(*fast).active) << cpu_optimization(*fast).note;
  EXPECT_FALSE(cpu_optimization(*plain).active);
  EXPECT_LE(cpu_optimization(*fast).probe_rel_diff, 1e-4);
  for (const std::string name : {"euler", "dpmpp_2m"}) {
    auto sampler = make_sampler(name);
    SampleJob job;
    job.sigmas = make_sigmas("karras", 6, plain->metadata().schedule, {});
    job.seeds = {0, 1, 2, 3, 4};
    job.batch = 5;
    const torch::Tensor want = run_sampler(*sampler, plain, job).samples;
    const torch::Tensor got = run_sampler(*sampler, fast, job).samples;
    EXPECT_LE(rel_diff(got, want), 1e-4) << name;
  }
}

TEST(CpuFastPath, KeepsTheHeadAndTheFeaturesMethod) {
  const std::string path = head_and_features_model();
  auto plain = open_model(path);
  const LoadOptions load = optimized(fresh_cache("head"));
  auto fast = open_model(path, "", {}, torch::kCPU, load);
  ASSERT_TRUE(cpu_optimization(*fast).active) << cpu_optimization(*fast).note;
  ASSERT_TRUE(fast->has_features());
  // Both 3x3 convolutions of forward (one through features) are Winograd calls where this build
  // has them (4 and 1 channels: at run time they are at::conv2d's), the group norm before SiLU is
  // fused with it, and info says so.
  const bool winograd = scoreflow::detail::winograd_available();
  EXPECT_EQ(cpu_optimization(*fast).winograd_convolutions, winograd ? 2 : 0);
  EXPECT_EQ(cpu_optimization(*fast).fused_group_norms, 1);
  const std::string note = cpu_path_note(*fast, load, "");
  EXPECT_EQ(note.find("; 2 3x3 convolutions routed to oneDNN Winograd") != std::string::npos, winograd) << note;
  EXPECT_NE(note.find("; 1 group norms fused with SiLU"), std::string::npos) << note;
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({3, 1, 8, 8});
  for (double sigma : {0.1, 1.0, 20.0}) {
    auto [d_plain, h_plain] = Denoiser(plain).with_head(x, sigma);
    auto [d_fast, h_fast] = Denoiser(fast).with_head(x, sigma);
    EXPECT_LE(rel_diff(d_fast, d_plain), 1e-4) << sigma;
    EXPECT_LE(rel_diff(h_fast, h_plain), 1e-4) << sigma;
    const torch::Tensor f_plain = plain->features(x, {sigma}, {}), f_fast = fast->features(x, {sigma}, {});
    ASSERT_EQ(f_fast.sizes(), f_plain.sizes());
    EXPECT_LE(rel_diff(f_fast, f_plain), 1e-4) << sigma;
  }
}

// Where the module with oneDNN's own convolutions fails (Debian's oneDNN 2.6 inside PyTorch 2.11's
// LibTorch: "could not execute a primitive"), the optimised module is built again without them, keeps
// the group norm + SiLU fusion, gives the plain module's values, and says why.
TEST(CpuFastPath, AModuleWhoseOneDnnConvolutionsFailIsBuiltWithoutThem) {
  if (!scoreflow::detail::winograd_available()) GTEST_SKIP() << "this build has no oneDNN convolutions";
  const std::string path = head_and_features_model();
  auto plain = open_model(path);
  const LoadOptions load = optimized(fresh_cache("onednn_off"));
  std::shared_ptr<Model> fast;
  {
    const FailingOneDnnConvolutions failing;  // for this load only, also if it throws
    fast = open_model(path, "", {}, torch::kCPU, load);
  }
  const CpuOptimization c = cpu_optimization(*fast);
  ASSERT_TRUE(c.active) << c.note;
  EXPECT_EQ(c.winograd_convolutions, 0);
  EXPECT_EQ(c.fused_group_norms, 1);
  EXPECT_NE(c.onednn_convolutions_off.find("could not be built: "), std::string::npos) << c.onednn_convolutions_off;
  EXPECT_NE(c.onednn_convolutions_off.find("could not execute a primitive (made to fail for a test)"),
            std::string::npos)
      << c.onednn_convolutions_off;
  const std::string note = cpu_path_note(*fast, load, "");
  EXPECT_EQ(c.onednn_convolutions_dropped, "Winograd");  // it has no 1x1 convolution
  EXPECT_NE(note.find("; without oneDNN's Winograd convolutions, as the module with all of them could not be built"),
            std::string::npos)
      << note;
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({3, 1, 8, 8});
  const std::vector<double> sigmas{0.5, 0.5, 0.5};
  EXPECT_LE(rel_diff(fast->denoise(x, sigmas, {}), plain->denoise(x, sigmas, {})), 1e-5);
  // Where they work, the same load keeps them.
  auto again = open_model(path, "", {}, torch::kCPU, optimized(fresh_cache("onednn_on")));
  EXPECT_EQ(cpu_optimization(*again).onednn_convolutions_off, "");
  EXPECT_EQ(cpu_optimization(*again).onednn_convolutions_dropped, "");
  EXPECT_EQ(cpu_optimization(*again).winograd_convolutions, 2);
}

// Where only one kind of routed convolution fails (on the 16-core host: oneDNN's 1x1 ones), the
// optimised module keeps the other kind, and says which it dropped. In builds without oneDNN the 1x1
// ones, as LibTorch's products, are the only kind, and a failing one leaves the module without them.
TEST(CpuFastPath, AFailingKindOfRoutedConvolutionIsDroppedAndTheOtherKept) {
  torch::jit::Module m("Mixed");
  torch::manual_seed(4);
  m.register_parameter("w1", torch::randn({4, 1, 3, 3}) * 0.4, false);
  m.register_parameter("p", torch::randn({4, 4, 1, 1}) * 0.4, false);
  m.register_parameter("w2", torch::randn({1, 4, 3, 3}) * 0.3, false);
  m.define(R"(
def forward(self, x, t):
    h = torch.conv2d(torch.conv2d(x, self.w1, None, [1, 1], [1, 1]), self.p)
    return torch.conv2d(torch.tanh(h), self.w2, None, [1, 1], [1, 1]) * (1.0 + t / 1000.0).view(-1, 1, 1, 1)
)");
  m.eval();
  const std::string path = ::testing::TempDir() + "/cpu_mixed_convs_" + std::to_string(getpid()) + ".pt";
  m.save(path, {{"scoreflow.json", R"({"prediction":"eps","schedule":{"type":"vp_discrete","betas":"linear",
      "beta_start":1e-4,"beta_end":0.02,"num_train_steps":1000},"time_input":"index","shape":[1,8,8]})"}});
  auto plain = open_model(path);
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({2, 1, 8, 8});
  const std::vector<double> sigmas{0.5, 2.0};
  struct Case {
    bool winograd_fails, pointwise_fails, products_fail, fast_libtorch_products;
    const char* dropped;
    int winograd, pointwise;
    const char* products;
    const char* without;  // the note's words for what was dropped
  };
  // Where oneDNN's products do not run at all (PyTorch's own LibTorch), the 1x1 convolutions run as
  // LibTorch's products where those are fast (MKL), and are left to at::conv2d where they are not
  // (Debian's reference BLAS): nothing to drop either way, unless those products fail too.
  const bool mkl = at::hasMKL();
  const std::vector<Case> with_onednn{
      {false, true, false, false, "1x1", 2, 0, "", "oneDNN's 1x1 convolutions"},
      {true, false, false, false, "Winograd", 0, 1, "oneDNN", "oneDNN's Winograd convolutions"},
      {true, true, false, false, "Winograd and 1x1", 0, 0, "", "oneDNN's Winograd and 1x1 convolutions"},
      {false, false, false, false, "", 2, 1, "oneDNN", ""},
      {false, false, true, false, "", 2, mkl ? 1 : 0, mkl ? "LibTorch" : "", ""},
      {false, false, true, true, "", 2, 1, "LibTorch", ""},
      {false, true, true, true, "1x1", 2, 0, "", "the 1x1 convolutions as LibTorch's products"},
      {true, true, true, true, "Winograd and 1x1", 0, 0, "",
       "oneDNN's Winograd convolutions and the 1x1 ones as LibTorch's products"}};
  // Without oneDNN the 3x3 convolutions stay as they are.
  const std::vector<Case> without_onednn{
      {false, false, true, true, "", 0, 1, "LibTorch", ""},
      {false, true, true, true, "1x1", 0, 0, "", "the 1x1 convolutions as LibTorch's products"}};
  const std::vector<Case>& cases = scoreflow::detail::winograd_available() ? with_onednn : without_onednn;
  for (const Case& k : cases) {
    const LoadOptions load = optimized(fresh_cache("mixed_" + std::to_string(&k - cases.data())));
    std::shared_ptr<Model> fast;
    {
      const FailingOneDnnConvolutions failing(k.winograd_fails, k.pointwise_fails, k.products_fail,
                                              k.fast_libtorch_products);
      fast = open_model(path, "", {}, torch::kCPU, load);
    }
    const CpuOptimization c = cpu_optimization(*fast);
    ASSERT_TRUE(c.active) << c.note;
    EXPECT_EQ(c.onednn_convolutions_dropped, k.dropped);
    EXPECT_EQ(c.winograd_convolutions, k.winograd) << k.dropped;
    EXPECT_EQ(c.pointwise_convolutions, k.pointwise) << k.dropped;
    EXPECT_EQ(c.pointwise_products, k.products) << k.dropped;
    const std::string note = cpu_path_note(*fast, load, "");
    if (std::string(k.products) == "LibTorch")
      EXPECT_NE(note.find("1 1x1 convolutions run as LibTorch's batched products on NCHW (oneDNN's do not run here)"),
                std::string::npos)
          << note;
    if (*k.dropped)
      EXPECT_NE(
          note.find(std::string("; without ") + k.without + ", as the module with all of them could not be built: "),
          std::string::npos)
          << note;
    else
      EXPECT_EQ(note.find("; without "), std::string::npos) << note;
    EXPECT_LE(rel_diff(fast->denoise(x, sigmas, {}), plain->denoise(x, sigmas, {})), 1e-5) << k.dropped;
  }
}

// A oneDNN convolution that fails says which one it was, at which step and with which status: on a
// machine where the module with them cannot be built, the note then names the convolution.
TEST(CpuFastPath, AFailingOneDnnConvolutionNamesItself) {
  using scoreflow::detail::conv2d_pointwise;
  using scoreflow::detail::conv2d_winograd;
  if (!scoreflow::detail::winograd_available() || !has_avx512_core())
    GTEST_SKIP() << "this build or CPU has no oneDNN Winograd kernel";
  torch::manual_seed(2);
  const torch::Tensor x = torch::randn({2, 32, 12, 10}), w3 = torch::randn({48, 32, 3, 3}),
                      w1 = torch::randn({48, 32, 1, 1}), b = torch::randn({48});
  const std::string kernel = scoreflow::detail::winograd_kernel(x, w3, b, {1, 1});
  ASSERT_FALSE(kernel.empty());
  ASSERT_TRUE(scoreflow::detail::pointwise_runs(x, w1, b));
  const std::string failure =
      " from [2, 32, 12, 10] to [2, 48, 12, 10] failed running it: could not execute a primitive (made to fail "
      "for a test) (status 5)";
  const FailingOneDnnConvolutions failing;
  const auto message = [](const std::function<void()>& call) -> std::string {
    try {
      call();
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(message([&] { conv2d_winograd(x, w3, b, {1}); }), "oneDNN's convolution " + kernel + failure);
  const std::string pointwise = message([&] { conv2d_pointwise(x, w1, b); });
  EXPECT_EQ(pointwise.rfind("oneDNN's convolution ", 0), 0u) << pointwise;
  EXPECT_NE(pointwise.find(" from [2, 32, 12, 10] to [2, 48, 12, 10] failed running it: "), std::string::npos)
      << pointwise;
  // A call that goes to at::conv2d (float64) fails before it, with the bare message.
  EXPECT_EQ(message([&] { conv2d_winograd(x.to(torch::kFloat64), w3.to(torch::kFloat64), c10::nullopt, {1}); }),
            "could not execute a primitive (made to fail for a test)");
}

TEST(CpuFastPath, TheFrozenModuleIsCachedAndReused) {
  const std::string path = head_and_features_model(), cache = fresh_cache("reuse");
  auto first = open_model(path, "", {}, torch::kCPU, optimized(cache));
  const CpuOptimization c1 = cpu_optimization(*first);
  ASSERT_TRUE(c1.active) << c1.note;
  EXPECT_FALSE(c1.cache_hit);
  ASSERT_FALSE(c1.cache_file.empty());
  EXPECT_EQ(c1.cache_file.rfind(cache + "/", 0), 0u) << c1.cache_file;
  EXPECT_TRUE(std::filesystem::exists(c1.cache_file));
  auto second = open_model(path, "", {}, torch::kCPU, optimized(cache));
  const CpuOptimization c2 = cpu_optimization(*second);
  ASSERT_TRUE(c2.active) << c2.note;
  EXPECT_TRUE(c2.cache_hit);
  EXPECT_EQ(c2.cache_file, c1.cache_file);
  ASSERT_TRUE(second->has_features());  // the cached module kept the features method
  const torch::Tensor x = torch::randn({2, 1, 8, 8});
  EXPECT_TRUE(torch::equal(Denoiser(second)(x, 0.7), Denoiser(first)(x, 0.7)));
  EXPECT_TRUE(torch::equal(second->features(x, {0.7}, {}), first->features(x, {0.7}, {})));
  // "none" turns the cache off.
  LoadOptions off = optimized("none");
  auto third = open_model(path, "", {}, torch::kCPU, off);
  EXPECT_TRUE(cpu_optimization(*third).active);
  EXPECT_TRUE(cpu_optimization(*third).cache_file.empty());
}

TEST(CpuFastPath, AProbeThatDisagreesDropsTheOptimisedModule) {
  const std::string path = kFixtures + "/tiny_eps.pt";
  LoadOptions strict = optimized(fresh_cache("probe"));
  strict.probe_tolerance = -1;  // no difference passes: exercises the fallback
  testing::internal::CaptureStderr();
  auto model = open_model(path, "", {}, torch::kCPU, strict);
  const std::string err = testing::internal::GetCapturedStderr();
  const CpuOptimization c = cpu_optimization(*model);
  EXPECT_FALSE(c.active);
  EXPECT_NE(c.note.find("differs from the plain module"), std::string::npos) << c.note;
  EXPECT_EQ(err.rfind("note: model '" + path + "': the optimised CPU module differs", 0), 0u) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  const torch::Tensor x = torch::randn({2, 1, 8, 8});
  EXPECT_TRUE(torch::equal(Denoiser(model)(x, 0.5), Denoiser(open_model(path))(x, 0.5)));
}

TEST(CpuFastPath, BatchesAboveTheLimitRunThePlainModule) {
  const std::string path = kFixtures + "/tiny_eps.pt";
  LoadOptions load = optimized(fresh_cache("limit"));
  load.optimize_max_batch = 2;
  auto fast = open_model(path, "", {}, torch::kCPU, load);
  auto plain = open_model(path);
  ASSERT_TRUE(cpu_optimization(*fast).active);
  const torch::Tensor x = torch::randn({3, 1, 8, 8});
  EXPECT_TRUE(torch::equal(Denoiser(fast)(x, 0.5), Denoiser(plain)(x, 0.5)));  // batch 3 > 2
}

TEST(CpuFastPath, TheFusedModuleMatchesThePlainOneOrSaysWhyNot) {
  // The fused module (oneDNN Graph) where this LibTorch has it: the plain module's samples to 1e-4
  // on the same noise, the SN-DPM head and the features method kept. Without it (Debian's 1.13):
  // one note naming the reason, and the plain module's bits.
  const std::string path = head_and_features_model();
  auto plain = open_model(path);
  LoadOptions load = optimized(fresh_cache("fused"));
  load.cpu_module = LoadOptions::CpuModule::kFused;
  testing::internal::CaptureStderr();
  auto fused = open_model(path, "", {}, torch::kCPU, load);
  const std::string err = testing::internal::GetCapturedStderr();
  const CpuOptimization c = cpu_optimization(*fused);
  const torch::Tensor x = torch::randn({3, 1, 8, 8});
  if (!cpu_fusion_available()) {
    EXPECT_FALSE(c.active);
    EXPECT_EQ(err,
              "note: model '" + path +
                  "': the fused CPU module could not be built: this LibTorch has no oneDNN Graph fusion; using the "
                  "plain module\n");
    EXPECT_TRUE(torch::equal(Denoiser(fused)(x, 0.7), Denoiser(plain)(x, 0.7)));
    return;
  }
  ASSERT_TRUE(c.active) << c.note;
  EXPECT_EQ(c.module, "fused");
  EXPECT_TRUE(err.empty()) << err;
  EXPECT_LE(c.probe_rel_diff, 1e-4);
  for (int call = 0; call < 3; ++call) {  // the executor compiles the fused graph during the first calls
    EXPECT_LE(rel_diff(Denoiser(fused)(x, 0.7), Denoiser(plain)(x, 0.7)), 1e-4) << call;
    EXPECT_LE(rel_diff(fused->features(x, {0.7}, {}), plain->features(x, {0.7}, {})), 1e-4) << call;
  }
  auto sampler = make_sampler("dpmpp_2m");
  SampleJob job;
  job.sigmas = make_sigmas("karras", 6, plain->metadata().schedule, {});
  job.seeds = {0, 1, 2};
  job.batch = 3;
  EXPECT_LE(rel_diff(run_sampler(*sampler, fused, job).samples, run_sampler(*sampler, plain, job).samples), 1e-4);
}

TEST(CpuFastPath, AStoredChoiceKeepsItsModule) {
  const std::string dir = fresh_cache("module"), file = dir + "/m.choice.json";
  EXPECT_EQ(store_cpu_choice(file, {8, {2, 9}, {3, 10}, {1, 7}, "fused"}).module, "fused");
  const std::optional<CpuChoice> read = read_cpu_choice(file);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->module, "fused");
  EXPECT_EQ(read->fused_ms, (std::vector<double>{1, 7}));
  EXPECT_EQ(read->optimized_ms, (std::vector<double>{3, 10}));
  // A choice stored before the fused module existed chose the optimised one; an unknown module is
  // no choice at all (timed again).
  std::ofstream(file) << R"({"max_batch": 1, "plain_ms": [2, 9], "optimized_ms": [1, 10]})";
  ASSERT_TRUE(read_cpu_choice(file).has_value());
  EXPECT_EQ(read_cpu_choice(file)->module, "optimized");
  EXPECT_TRUE(read_cpu_choice(file)->fused_ms.empty());
  std::ofstream(file) << R"({"max_batch": 1, "plain_ms": [2], "optimized_ms": [1], "module": "turbo"})";
  EXPECT_FALSE(read_cpu_choice(file).has_value());
}

TEST(CpuFastPath, TheRuleKeepsTheOptimisedModuleWhereItWasFaster) {
  EXPECT_EQ(choose_max_batch({-1, {10, 50}, {5, 40}}), 8);
  EXPECT_EQ(choose_max_batch({-1, {10, 50}, {5, 60}}), 1);
  EXPECT_EQ(choose_max_batch({-1, {10, 50}, {12, 40}}), 0);
  EXPECT_EQ(choose_max_batch({-1, {10, 50}, {10, 50}}), 0);  // a tie keeps the plain module
  EXPECT_EQ(choose_max_batch({-1, {}, {}}), 0);
  // Faster at 16 as well: every batch (a network whose attention products moved to oneDNN).
  EXPECT_EQ(choose_max_batch({-1, {10, 50, 100}, {5, 40, 90}}), CpuOptimization::kEveryBatch);
  EXPECT_EQ(choose_max_batch({-1, {10, 50, 100}, {5, 40, 110}}), 8);
  EXPECT_EQ(choose_max_batch({-1, {10, 50, 100}, {5, 60, 90}}), 1);  // lost at 8: 16 is not looked at
  // The fused module's limit comes from its own times.
  EXPECT_EQ(choose_max_batch({-1, {10, 50}, {}, {5, 40}, "fused"}), 8);
  EXPECT_EQ(choose_max_batch({-1, {10, 50}, {12, 40}, {5, 60}, "fused"}), 1);
  EXPECT_EQ(choose_max_batch({-1, {10, 50}, {5, 40}, {12}, "fused"}), 0);
}

TEST(CpuFastPath, TheBatchLimitIsTimedOnceAndTheStoredChoiceDecides) {
  const std::string path = kFixtures + "/tiny_eps.pt";
  LoadOptions load = optimized(fresh_cache("timed"));
  load.optimize_max_batch = LoadOptions::kTimedChoice;
  auto first = open_model(path, "", {}, torch::kCPU, load);
  const CpuOptimization c1 = cpu_optimization(*first);
  EXPECT_EQ(c1.choice, "timed");
  // Batch 8 is timed only when the optimised module won at batch 1, and batch 16 only when it won at 8.
  ASSERT_EQ(c1.plain_ms.size(), c1.optimized_ms.size());
  ASSERT_GE(c1.plain_ms.size(), 1u);
  size_t timed = 1;
  if (c1.optimized_ms[0] < c1.plain_ms[0])
    timed = c1.plain_ms.size() >= 2 && c1.optimized_ms[1] < c1.plain_ms[1] ? 3 : 2;
  ASSERT_EQ(c1.plain_ms.size(), timed);
  for (size_t i = 0; i < c1.plain_ms.size(); ++i) EXPECT_TRUE(c1.plain_ms[i] > 0 && c1.optimized_ms[i] > 0);
  EXPECT_EQ(c1.max_batch, choose_max_batch({-1, c1.plain_ms, c1.optimized_ms, c1.fused_ms, c1.module}));
  EXPECT_EQ(c1.module, "optimized");  // the default; the fused module only when asked for
  EXPECT_TRUE(c1.fused_ms.empty());
  EXPECT_EQ(c1.active, c1.max_batch > 0) << c1.note;
  ASSERT_TRUE(std::filesystem::exists(c1.choice_file));
  // A second load takes the stored choice and does not time again.
  auto second = open_model(path, "", {}, torch::kCPU, load);
  const CpuOptimization c2 = cpu_optimization(*second);
  EXPECT_EQ(c2.choice, "cached");
  EXPECT_EQ(c2.max_batch, c1.max_batch);
  EXPECT_EQ(c2.plain_ms, c1.plain_ms);
  // Whatever the stored choice says is what runs: "slower at batch 1" gives the plain module's bits.
  auto write_choice = [&](int max_batch) {
    std::ofstream(c1.choice_file) << nlohmann::json{
        {"max_batch", max_batch},
        {"plain_ms", {2.0, 9.0}},
        {"optimized_ms", {3.0, 8.0}}}.dump();
  };
  write_choice(0);
  auto slower = open_model(path, "", {}, torch::kCPU, load);
  const CpuOptimization c3 = cpu_optimization(*slower);
  EXPECT_FALSE(c3.active);
  EXPECT_EQ(c3.max_batch, 0);
  EXPECT_NE(c3.note.find("slower than the plain module at batch 1"), std::string::npos) << c3.note;
  const torch::Tensor x = torch::randn({1, 1, 8, 8});
  EXPECT_TRUE(torch::equal(Denoiser(slower)(x, 0.5), Denoiser(open_model(path))(x, 0.5)));
  write_choice(8);
  auto faster = open_model(path, "", {}, torch::kCPU, load);
  EXPECT_TRUE(cpu_optimization(*faster).active);
  EXPECT_EQ(cpu_optimization(*faster).max_batch, 8);
  // Without a cache each load times for itself.
  load.cache_dir = "none";
  auto uncached = open_model(path, "", {}, torch::kCPU, load);
  EXPECT_EQ(cpu_optimization(*uncached).choice, "timed");
  EXPECT_TRUE(cpu_optimization(*uncached).choice_file.empty());
}

TEST(CpuFastPath, BadLoadOptionsAreRefusedNamingTheField) {
  using testing_support::error_of;
  const std::string path = kFixtures + "/tiny_eps.pt";
  LoadOptions load = optimized("none");
  load.optimize_max_batch = -2;
  EXPECT_EQ(error_of([&] { open_model(path, "", {}, torch::kCPU, load); }),
            "optimize_max_batch must be >= 0 (or -1: timed at load), got -2");
  EXPECT_EQ(error_of([] { parse_cpu_module("turbo"); }), "cpu_module must be optimized or fused, got 'turbo'");
  EXPECT_EQ(parse_cpu_module("fused"), LoadOptions::CpuModule::kFused);
  LoadOptions teams;
  teams.cpu_teams = -1;
  EXPECT_EQ(error_of([&] { open_model(path, "", {}, torch::kCPU, teams); }),
            "cpu_teams must be >= 0 (0: automatic, 1: off), got -1");
  auto bad = testing_cli::run("info --cpu-teams -1 --model " + path);
  EXPECT_NE(bad.code, 0);
  EXPECT_EQ(bad.err, "error: --cpu-teams must be >= 0 (0: automatic, 1: off), got -1\n");
  EXPECT_TRUE(bad.out.empty()) << bad.out;
}

// Batched products on oneDNN (optimize_for_cpu where LibTorch has no MKL): the reference BLAS of
// Debian's LibTorch ran attention's products at 3-6 GFLOP/s.
TEST(CpuFastPath, BatchedProductsOnOneDnnEqualTheBlasOnes) {
  using scoreflow::detail::bmm_onednn;
  using scoreflow::detail::matmul_onednn;
  torch::manual_seed(3);
  // 64 x 48 x 48 multiply-adds per row: enough for oneDNN.
  const torch::Tensor a = torch::randn({3, 64, 48}), b = torch::randn({3, 48, 48});
  const torch::Tensor exact = torch::bmm(a.to(torch::kFloat64), b.to(torch::kFloat64));
  EXPECT_LE(rel_diff(bmm_onednn(a, b), exact), 1e-6);
  EXPECT_EQ(bmm_onednn(a, b).sizes(), (std::vector<int64_t>{3, 64, 48}));
  const torch::Tensor at = torch::randn({3, 48, 64}).transpose(1, 2), bt = torch::randn({3, 48, 48}).transpose(1, 2);
  EXPECT_LE(rel_diff(bmm_onednn(at, bt), torch::bmm(at.to(torch::kFloat64), bt.to(torch::kFloat64))), 1e-6);
  EXPECT_LE(rel_diff(matmul_onednn(a, b), exact), 1e-6);
  const torch::Tensor m2 = torch::randn({5, 7}), v4 = torch::randn({2, 3, 7, 4});
  // Other inputs take LibTorch's own products: float64, gradients, empty batches, other ranks.
  EXPECT_TRUE(torch::equal(bmm_onednn(a.to(torch::kFloat64), b.to(torch::kFloat64)), exact));
  const torch::Tensor small_a = torch::randn({3, 5, 7}), small_b = torch::randn({3, 7, 4});
  EXPECT_TRUE(torch::equal(bmm_onednn(small_a, small_b), torch::bmm(small_a, small_b)));
  const torch::Tensor w = a.clone().requires_grad_(true);
  bmm_onednn(w, b).sum().backward();
  EXPECT_LE(rel_diff(w.grad(), b.sum(2).unsqueeze(1).expand({3, 64, 48})), 1e-6);
  EXPECT_EQ(bmm_onednn(torch::zeros({0, 64, 48}), torch::zeros({0, 48, 48})).sizes(),
            (std::vector<int64_t>{0, 64, 48}));
  EXPECT_TRUE(torch::equal(matmul_onednn(m2, v4), torch::matmul(m2, v4)));
  EXPECT_THROW(bmm_onednn(a, torch::randn({3, 6, 48})), c10::Error);  // LibTorch's own shape error
  // baddbmm: beta = 0 ignores the added tensor, NaN included, as torch.baddbmm does.
  const torch::Tensor nan = torch::full({3, 64, 48}, NAN), c = torch::randn({3, 64, 48});
  EXPECT_LE(rel_diff(scoreflow::detail::baddbmm_onednn(nan, a, b, 0, 0.5), exact * 0.5), 1e-6);
  EXPECT_LE(rel_diff(scoreflow::detail::baddbmm_onednn(c, a, b, 2, 3), torch::baddbmm(c, a, b, 2, 3)), 1e-6);
  // einsum: batched products in any letter order (EDM's attention), LibTorch's einsum otherwise.
  using scoreflow::detail::einsum_onednn;
  const torch::Tensor q = torch::randn({2, 64, 48}), k = torch::randn({2, 64, 64}), wq = torch::randn({2, 48, 64});
  for (const std::string& eq : {"ncq,nck->nqk", "ncq, nck -> nkq", "nqk,nck->ncq", "ncq,nck->qnk"}) {
    const bool second = eq.rfind("nqk", 0) == 0;
    const std::vector<torch::Tensor> ops =
        second ? std::vector<torch::Tensor>{wq, k} : std::vector<torch::Tensor>{q, k};
    std::vector<torch::Tensor> ops64;
    for (const torch::Tensor& t : ops) ops64.push_back(t.to(torch::kFloat64));
    EXPECT_LE(rel_diff(einsum_onednn(eq, ops), torch::einsum(eq, ops64)), 1e-6) << eq;
  }
  const torch::Tensor one = torch::randn({1, 64, 48});  // a broadcast batch: LibTorch's einsum
  EXPECT_TRUE(torch::equal(einsum_onednn("ncq,nck->nqk", {one, k}), torch::einsum("ncq,nck->nqk", {one, k})));
  EXPECT_TRUE(torch::equal(einsum_onednn("ij,jk->ik", {m2, m2.t()}), torch::einsum("ij,jk->ik", {m2, m2.t()})));
  EXPECT_TRUE(torch::equal(einsum_onednn("bii->bi", {torch::ones({2, 3, 3})}), torch::ones({2, 3})));

  // A network with attention-like products, through optimize_for_cpu: the products are rerouted
  // where this LibTorch has no MKL, and the outputs stay the plain module's.
  torch::jit::Module m("Attention");
  m.define(R"(
def forward(self, x):
    q = x.flatten(2)
    w = torch.softmax(torch.bmm(q.transpose(1, 2), q), dim=2)
    s = torch.softmax(torch.einsum('ncq,nck->nqk', q, q), dim=2)
    e = torch.baddbmm(torch.empty_like(w), q.transpose(1, 2), q, beta=0.0, alpha=0.5)
    return (torch.matmul(q, w.transpose(1, 2)) + torch.bmm(q, s) + torch.bmm(q, e)).view(x.shape)
)");
  m.eval();
  bool hit = true;
  torch::jit::Module fast = optimize_for_cpu(frozen_for_cpu(m, {"forward"}, "", &hit), {"forward"});
  std::ostringstream graph;
  graph << *fast.get_method("forward").graph();
  const bool routed = scoreflow::detail::routes_bmm_through_onednn();
  for (const std::string op : {"bmm", "matmul", "einsum", "baddbmm"})
    EXPECT_EQ(graph.str().find("scoreflow::" + op + "_onednn") != std::string::npos, routed) << op << graph.str();
  const torch::Tensor x = torch::randn({2, 64, 8, 8});  // 64 x 64 x 64 products
  torch::NoGradGuard no_grad;
  EXPECT_LE(rel_diff(fast.forward({x}).toTensor(), m.forward({x}).toTensor()), 1e-5);
}

// 3x3 convolutions through oneDNN's Winograd kernels (optimize_for_cpu where LibTorch links the
// shared oneDNN): the same convolution as LibTorch's to float32 rounding, weights transformed once per
// weight tensor, and everything Winograd cannot take left to at::conv2d.
TEST(CpuFastPath, WinogradConvolutionsEqualTheDirectOnes) {
  using scoreflow::detail::conv2d_winograd;
  using scoreflow::detail::winograd_runs;
  torch::manual_seed(5);
  // 32 -> 48 channels: channel counts oneDNN blocks by 16, as in the demo model (48, 96, 144, 192).
  const torch::Tensor x = torch::randn({2, 32, 12, 10}), w = torch::randn({48, 32, 3, 3}) * 0.1, b = torch::randn({48});
  const auto exact = [&](const torch::Tensor& weight, const c10::optional<torch::Tensor>& bias, int64_t pad) {
    return torch::conv2d(x.to(torch::kFloat64), weight.to(torch::kFloat64),
                         bias ? c10::optional<torch::Tensor>(bias->to(torch::kFloat64)) : c10::nullopt, 1, pad);
  };
  // Where this build and CPU have the kernel it runs (and then rounds differently from the direct
  // convolution); elsewhere the call is at::conv2d's.
  if (scoreflow::detail::winograd_available() && has_avx512_core()) EXPECT_TRUE(winograd_runs(x, w, b, {1, 1}));
  for (const int64_t pad : {1, 0}) {
    for (const bool with_bias : {true, false}) {
      const c10::optional<torch::Tensor> bias = with_bias ? c10::optional<torch::Tensor>(b) : c10::nullopt;
      const torch::Tensor got = conv2d_winograd(x, w, bias, {pad});
      EXPECT_EQ(got.sizes(), exact(w, bias, pad).sizes());
      EXPECT_LE(rel_diff(got, exact(w, bias, pad)), 1e-5) << pad << with_bias;
      EXPECT_EQ(torch::equal(got, torch::conv2d(x, w, bias, 1, pad)), !winograd_runs(x, w, bias, {pad, pad}))
          << pad << with_bias;
    }
  }
  // The transformed weights follow the tensor: changed in place, or another tensor of the same shape.
  const torch::Tensor w2 = w.clone();
  EXPECT_LE(rel_diff(conv2d_winograd(x, w2, b, {1, 1}), exact(w, b, 1)), 1e-5);
  w2.mul_(-2);
  EXPECT_LE(rel_diff(conv2d_winograd(x, w2, b, {1, 1}), exact(w * -2, b, 1)), 1e-5);
  const torch::Tensor w3 = torch::randn({48, 32, 3, 3});
  EXPECT_LE(rel_diff(conv2d_winograd(x, w3, b, {1, 1}), exact(w3, b, 1)), 1e-5);
  // Calls from several threads at once.
  std::vector<torch::Tensor> outs(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < outs.size(); ++i)
    threads.emplace_back([&, i] { outs[i] = conv2d_winograd(x, i % 2 ? w3 : w, b, {1, 1}); });
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < outs.size(); ++i) EXPECT_LE(rel_diff(outs[i], exact(i % 2 ? w3 : w, b, 1)), 1e-5) << i;
  // What Winograd does not take is at::conv2d's, exactly: float64, gradients, other kernel sizes,
  // and at::conv2d's own error for mismatched channels.
  EXPECT_FALSE(winograd_runs(x.to(torch::kFloat64), w.to(torch::kFloat64), b.to(torch::kFloat64), {1, 1}));
  EXPECT_TRUE(torch::equal(conv2d_winograd(x.to(torch::kFloat64), w.to(torch::kFloat64), c10::nullopt, {1}),
                           torch::conv2d(x.to(torch::kFloat64), w.to(torch::kFloat64), {}, 1, 1)));
  const torch::Tensor wg = w.clone().requires_grad_(true);
  EXPECT_FALSE(winograd_runs(x, wg, b, {1, 1}));
  conv2d_winograd(x, wg, b, {1, 1}).sum().backward();
  EXPECT_TRUE(wg.grad().defined());
  const torch::Tensor w5 = torch::randn({48, 32, 5, 5});
  EXPECT_FALSE(winograd_runs(x, w5, b, {2, 2}));
  EXPECT_TRUE(torch::equal(conv2d_winograd(x, w5, b, {2}), torch::conv2d(x, w5, b, 1, 2)));
  EXPECT_THROW(conv2d_winograd(x, torch::randn({48, 16, 3, 3}), b, {1}), c10::Error);
  // The kernel: Winograd, and the direct algorithm for one input channel (Winograd would pad it to 16).
  if (scoreflow::detail::winograd_available() && has_avx512_core()) {
    EXPECT_NE(scoreflow::detail::winograd_kernel(x, w, b, {1, 1}).find("wino"), std::string::npos);
    const torch::Tensor x1 = torch::randn({2, 1, 28, 28}), w1 = torch::randn({48, 1, 3, 3});
    const std::string first = scoreflow::detail::winograd_kernel(x1, w1, b, {1, 1});
    EXPECT_FALSE(first.empty());
    EXPECT_EQ(first.find("wino"), std::string::npos) << first;
    EXPECT_LE(rel_diff(conv2d_winograd(x1, w1, b, {1}),
                       torch::conv2d(x1.to(torch::kFloat64), w1.to(torch::kFloat64), b.to(torch::kFloat64), 1, 1)),
              1e-6);
  }
  EXPECT_TRUE(
      scoreflow::detail::winograd_kernel(x.to(torch::kFloat64), w.to(torch::kFloat64), c10::nullopt, {1, 1}).empty());

  // In a network, through optimize_for_cpu: only the 3x3, stride-1, one-group convolution is routed
  // to Winograd, and the unpadded 1x1 one to conv2d_pointwise.
  torch::jit::Module m("Convs");
  m.register_parameter("w", w, false);
  m.register_parameter("b", b, false);
  m.register_parameter("strided", torch::randn({48, 48, 3, 3}) * 0.05, false);
  m.register_parameter("grouped", torch::randn({48, 24, 3, 3}) * 0.05, false);
  m.register_parameter("point", torch::randn({32, 48, 1, 1}) * 0.1, false);
  m.register_parameter("point2", torch::randn({48, 48, 1, 1}) * 0.1, false);
  m.define(R"(
def forward(self, x):
    h = torch.silu(torch.conv2d(x, self.w, self.b, [1, 1], [1, 1]))
    h = h + torch.conv2d(h, self.grouped, None, [1, 1], [1, 1], [1, 1], 2)
    s = torch.conv2d(h, self.strided, None, [2, 2], [1, 1]) + torch.conv2d(h, self.point2, None, [2, 2])
    return torch.conv2d(h, self.point) + torch.conv2d(h, self.point, None, [1, 1], [1, 1])[:, :, 1:-1, 1:-1], s
)");
  m.eval();
  // Also on a frozen module read back from the cache, whose constant lists are lists of constants.
  // The 1x1 one goes to conv2d_pointwise also in a build without oneDNN, where LibTorch's products are
  // fast (MKL).
  const int winograd = scoreflow::detail::winograd_available() ? 1 : 0;
  const int pointwise = scoreflow::detail::pointwise_available() || at::hasMKL() ? 1 : 0;
  const std::string cache = fresh_cache("winograd") + "/convs.frozen.pt";
  bool hit = true;
  torch::jit::Module frozen = frozen_for_cpu(m, {"forward"}, cache, &hit);
  EXPECT_FALSE(hit);
  for (const torch::jit::Module& f : {frozen, frozen_for_cpu(m, {"forward"}, cache, &hit)}) {
    std::shared_ptr<torch::jit::Graph> graph = f.get_method("forward").graph()->copy();
    EXPECT_EQ(scoreflow::detail::route_convolutions_through_onednn(graph), winograd + pointwise);
  }
  EXPECT_TRUE(hit);
  torch::jit::Module fast = optimize_for_cpu(frozen, {"forward"});
  std::ostringstream text;
  text << *fast.get_method("forward").graph();
  EXPECT_EQ(scoreflow::detail::count_winograd_convolutions(*fast.get_method("forward").graph()), winograd)
      << text.str();
  EXPECT_EQ(scoreflow::detail::count_pointwise_convolutions(*fast.get_method("forward").graph()), pointwise)
      << text.str();
  torch::NoGradGuard no_grad;
  const auto got = fast.forward({x}).toTuple(), want = m.forward({x}).toTuple();
  for (size_t i = 0; i < 2; ++i)
    EXPECT_LE(rel_diff(got->elements()[i].toTensor(), want->elements()[i].toTensor()), 1e-5) << i;
}

namespace {

using PointwiseConvolution =
    std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const c10::optional<torch::Tensor>&)>;

// `conv` against float64 conv2d on channel counts that are and are not multiples of 16 and a 1x1
// image, biased and not; `each` sees every case's arguments.
void expect_pointwise_values(const PointwiseConvolution& conv,
                             const std::function<void(const torch::Tensor&, const torch::Tensor&,
                                                      const c10::optional<torch::Tensor>&)>& each = {}) {
  for (const auto& [shape, out] : std::vector<std::pair<std::vector<int64_t>, int64_t>>{
           {{2, 48, 12, 10}, 96}, {{3, 5, 7, 4}, 3}, {{1, 16, 1, 1}, 32}}) {
    const torch::Tensor x = torch::randn(shape), w = torch::randn({out, shape[1], 1, 1}), b = torch::randn({out});
    for (const bool with_bias : {true, false}) {
      const c10::optional<torch::Tensor> bias = with_bias ? c10::optional<torch::Tensor>(b) : c10::nullopt;
      const torch::Tensor want =
          torch::conv2d(x.to(torch::kFloat64), w.to(torch::kFloat64),
                        with_bias ? c10::optional<torch::Tensor>(b.to(torch::kFloat64)) : c10::nullopt);
      const torch::Tensor got = conv(x, w, bias);
      EXPECT_EQ(got.sizes(), want.sizes());
      EXPECT_LE(rel_diff(got, want), 1e-6) << shape << with_bias;
      if (each) each(x, w, bias);
    }
  }
}

// What a 1x1 route does not take is at::conv2d's, exactly: float64, gradients, a 3x3 weight; so is
// at::conv2d's error for mismatched channels. `x`: float32 with 48 channels, `w` [32, 48, 1, 1].
void expect_others_are_conv2d(const PointwiseConvolution& conv, const torch::Tensor& x, const torch::Tensor& w,
                              const torch::Tensor& b) {
  const torch::Tensor x64 = x.to(torch::kFloat64), w64 = w.to(torch::kFloat64);
  EXPECT_TRUE(torch::equal(conv(x64, w64, c10::nullopt), torch::conv2d(x64, w64)));
  const torch::Tensor wg = w.clone().requires_grad_(true);
  conv(x, wg, b).sum().backward();
  EXPECT_TRUE(wg.grad().defined());
  const torch::Tensor w3 = torch::randn({32, 48, 3, 3});
  EXPECT_TRUE(torch::equal(conv(x, w3, b), torch::conv2d(x, w3, b)));
  EXPECT_THROW(conv(x, torch::randn({32, 16, 1, 1}), b), c10::Error);
}

}  // namespace

// 1x1 convolutions through oneDNN on the NCHW tensors: at::conv2d's values to float rounding, and
// what oneDNN does not take is at::conv2d's, exactly.
TEST(CpuFastPath, PointwiseConvolutionsEqualTheDirectOnes) {
  using scoreflow::detail::conv2d_pointwise;
  using scoreflow::detail::pointwise_runs;
  torch::manual_seed(7);
  expect_pointwise_values(conv2d_pointwise,
                          [](const torch::Tensor& x, const torch::Tensor& w, const c10::optional<torch::Tensor>& bias) {
                            if (scoreflow::detail::winograd_available())
                              EXPECT_TRUE(pointwise_runs(x, w, bias)) << x.sizes();
                          });
  // A non-contiguous input, and calls from several threads at once with two weights.
  const torch::Tensor x = torch::randn({2, 6, 5, 48}).permute({0, 3, 1, 2});
  const torch::Tensor w = torch::randn({32, 48, 1, 1}), w2 = torch::randn({32, 48, 1, 1}), b = torch::randn({32});
  EXPECT_LE(rel_diff(conv2d_pointwise(x, w, b), torch::conv2d(x, w, b)), 1e-6);
  std::vector<torch::Tensor> outs(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < outs.size(); ++i)
    threads.emplace_back([&, i] { outs[i] = conv2d_pointwise(x, i % 2 ? w2 : w, b); });
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < outs.size(); ++i) EXPECT_LE(rel_diff(outs[i], torch::conv2d(x, i % 2 ? w2 : w, b)), 1e-6) << i;
  EXPECT_FALSE(pointwise_runs(x.to(torch::kFloat64), w.to(torch::kFloat64), c10::nullopt));
  EXPECT_FALSE(pointwise_runs(x, w.clone().requires_grad_(true), b));
  EXPECT_FALSE(pointwise_runs(x, torch::randn({32, 48, 3, 3}), b));
  expect_others_are_conv2d(conv2d_pointwise, x, w, b);
}

// 1x1 convolutions as one batched product of LibTorch's (where oneDNN's products do not run): the
// direct convolution's values to float rounding; what it does not take is at::conv2d's, exactly.
TEST(CpuFastPath, PointwiseConvolutionsAsLibTorchProductsEqualTheDirectOnes) {
  using scoreflow::detail::conv2d_pointwise_products;
  torch::manual_seed(8);
  expect_pointwise_values(conv2d_pointwise_products);
  const torch::Tensor x = torch::randn({2, 6, 5, 48}).permute({0, 3, 1, 2});  // not contiguous
  const torch::Tensor w = torch::randn({32, 48, 1, 1}), b = torch::randn({32});
  EXPECT_LE(rel_diff(conv2d_pointwise_products(x, w, b), torch::conv2d(x, w, b)), 1e-6);
  expect_others_are_conv2d(conv2d_pointwise_products, x, w, b);
  // conv2d_pointwise takes this route where oneDNN's products do not run (or the build has no oneDNN)
  // and LibTorch's are fast.
  const FailingOneDnnConvolutions products_fail(false, false, true, true);
  EXPECT_FALSE(scoreflow::detail::pointwise_available());
  EXPECT_FALSE(scoreflow::detail::pointwise_runs(x, w, b));
  EXPECT_TRUE(torch::equal(scoreflow::detail::conv2d_pointwise(x, w, b), conv2d_pointwise_products(x, w, b)));
}

// Group normalisation and SiLU in one pass (optimize_for_cpu): LibTorch's two operators' values to
// float rounding, in double where the statistics need it, on every thread count; what it does not
// take is LibTorch's, exactly.
TEST(CpuFastPath, GroupNormSiluEqualsTheTwoOperators) {
  using scoreflow::detail::group_norm_silu;
  const auto reference = [](const torch::Tensor& x, int64_t groups, const torch::Tensor& w, const torch::Tensor& b) {
    const auto d = [](const torch::Tensor& t) {
      return t.defined() ? c10::optional<torch::Tensor>(t.to(torch::kFloat64)) : c10::nullopt;
    };
    return torch::silu(torch::group_norm(x.to(torch::kFloat64), groups, d(w), d(b), 1e-5));
  };
  torch::manual_seed(11);
  struct Case {
    std::vector<int64_t> shape;
    int64_t groups;
    bool affine;
    double scale, offset;
  };
  // Group sizes below, at and between multiples of 16 (the kernel's lanes), 3-D input, no affine
  // parameters, values where exp(-v) leaves the float range, and a mean 1e4 standard deviations from zero.
  for (const Case& c : std::vector<Case>{{{2, 32, 12, 10}, 8, true, 1, 0},
                                         {{3, 6, 7}, 3, false, 1, 0},
                                         {{1, 16, 3, 3}, 16, true, 1, 0},
                                         {{2, 12, 9, 11}, 4, true, 1, 0},
                                         {{2, 8, 5, 5}, 2, true, 300, 0},
                                         {{2, 8, 6, 6}, 4, true, 1, 1e4}}) {
    const torch::Tensor x = torch::randn(c.shape) * c.scale + c.offset;
    const torch::Tensor w = c.affine ? torch::randn({c.shape[1]}) * 40 : torch::Tensor();
    const torch::Tensor b = c.affine ? torch::randn({c.shape[1]}) : torch::Tensor();
    const auto opt = [](const torch::Tensor& t) {
      return t.defined() ? c10::optional<torch::Tensor>(t) : c10::nullopt;
    };
    torch::Tensor one;
    {
      ThreadCount threads(1);
      one = group_norm_silu(x, c.groups, opt(w), opt(b), 1e-5);
    }
    ThreadCount threads(4);
    const torch::Tensor got = group_norm_silu(x, c.groups, opt(w), opt(b), 1e-5);
    const torch::Tensor want = reference(x, c.groups, w, b);
    EXPECT_EQ(got.sizes(), x.sizes());
    EXPECT_EQ(got.scalar_type(), torch::kFloat32);
    EXPECT_LE(rel_diff(got, want), 1e-6) << c.shape << c.scale << c.offset;
    EXPECT_LE((got.to(torch::kFloat64) - want).abs().max().item<double>(), 2e-6 * want.abs().max().item<double>())
        << c.shape << c.scale << c.offset;
    EXPECT_TRUE(torch::equal(got, one)) << "thread count changed the result for " << c.shape;
  }
  const torch::Tensor x = torch::randn({2, 8, 5, 4}), w = torch::randn({8}), b = torch::randn({8});
  // A non-contiguous input; NaN stays NaN.
  const torch::Tensor xt = torch::randn({2, 5, 4, 8}).permute({0, 3, 1, 2});
  EXPECT_LE(rel_diff(group_norm_silu(xt, 4, w, b, 1e-5), reference(xt, 4, w, b)), 1e-6);
  torch::Tensor with_nan = x.clone();
  with_nan[1][3][2][1] = std::nan("");
  const torch::Tensor nan_out = group_norm_silu(with_nan, 4, w, b, 1e-5);
  EXPECT_TRUE(torch::isnan(nan_out[1][2]).all().item<bool>());
  EXPECT_FALSE(torch::isnan(nan_out[0]).any().item<bool>());
  // LibTorch's own operators: float64, gradients, and LibTorch's error for groups that do not divide
  // the channels.
  const torch::Tensor x64 = x.to(torch::kFloat64), w64 = w.to(torch::kFloat64), b64 = b.to(torch::kFloat64);
  EXPECT_TRUE(
      torch::equal(group_norm_silu(x64, 4, w64, b64, 1e-5), torch::silu(torch::group_norm(x64, 4, w64, b64, 1e-5))));
  const torch::Tensor xg = x.clone().requires_grad_(true);
  group_norm_silu(xg, 4, w, b, 1e-5).sum().backward();
  EXPECT_TRUE(xg.grad().defined());
  EXPECT_THROW(group_norm_silu(x, 3, w, b, 1e-5), c10::Error);

  // In a network, through optimize_for_cpu: a group norm whose only use is SiLU (or in-place SiLU) is
  // fused; one whose output is also used elsewhere is not.
  torch::jit::Module m("Norms");
  m.register_parameter("w", w, false);
  m.register_parameter("b", b, false);
  m.define(R"(
def forward(self, x):
    h = torch.silu(torch.group_norm(x, 4, self.w, self.b, 1e-5))
    g = torch.group_norm(h, 2, None, None, 1e-5).silu_()
    n = torch.group_norm(g, 4, self.w, self.b, 1e-5)
    return torch.silu(n) + n
)");
  m.eval();
  bool hit = true;
  torch::jit::Module frozen = frozen_for_cpu(m, {"forward"}, "", &hit);
  std::shared_ptr<torch::jit::Graph> graph = frozen.get_method("forward").graph()->copy();
  EXPECT_EQ(scoreflow::detail::fuse_group_norm_silu(graph), 2) << *graph;
  EXPECT_EQ(scoreflow::detail::count_group_norm_silu(*graph), 2);
  torch::jit::Module fast = optimize_for_cpu(frozen, {"forward"});
  EXPECT_EQ(scoreflow::detail::count_group_norm_silu(*fast.get_method("forward").graph()), 2);
  torch::NoGradGuard no_grad;
  EXPECT_LE(rel_diff(fast.forward({x}).toTensor(), m.forward({x}).toTensor()), 1e-6);
}

// The additions fused into the operator after them (optimize_for_cpu): the time embedding added before
// a group norm + SiLU, and a residual sum scaled by a constant. LibTorch's values to float rounding
// (the statistics of the sum in double), on every thread count; what the kernels do not take is
// LibTorch's, exactly; the rewrite leaves additions with other uses alone.
TEST(CpuFastPath, AdditionsFuseWithTheOperatorAfterThem) {
  using scoreflow::detail::add_group_norm_silu;
  using scoreflow::detail::add_scale;
  torch::manual_seed(12);
  const torch::Tensor w = torch::randn({8}) * 3, b = torch::randn({8});
  const auto reference = [&](const torch::Tensor& x, const torch::Tensor& shift, int64_t groups) {
    return torch::silu(torch::group_norm(x.to(torch::kFloat64) + shift.to(torch::kFloat64), groups,
                                         w.to(torch::kFloat64), b.to(torch::kFloat64), 1e-5));
  };
  // A shift per sample and channel, one for all samples, a 3-D input, and a sum whose mean lies 1e4
  // standard deviations from zero while the input's does not (the shift carries it).
  struct Case {
    std::vector<int64_t> shape, shift;
    double shift_scale;
  };
  for (const Case& c : std::vector<Case>{{{3, 8, 9, 7}, {3, 8, 1, 1}, 1},
                                         {{2, 8, 5, 6}, {1, 8, 1, 1}, 1},
                                         {{2, 8, 17}, {2, 8, 1}, 1},
                                         {{2, 8, 6, 6}, {2, 8, 1, 1}, 1e4}}) {
    const torch::Tensor x = torch::randn(c.shape), shift = torch::randn(c.shift) * c.shift_scale;
    torch::Tensor one;
    {
      ThreadCount threads(1);
      one = add_group_norm_silu(x, shift, 4, w, b, 1e-5);
    }
    ThreadCount threads(4);
    const torch::Tensor got = add_group_norm_silu(x, shift, 4, w, b, 1e-5);
    const torch::Tensor want = reference(x, shift, 4);
    EXPECT_EQ(got.sizes(), x.sizes());
    EXPECT_LE(rel_diff(got, want), 1e-6) << c.shape << c.shift;
    EXPECT_LE((got.to(torch::kFloat64) - want).abs().max().item<double>(), 2e-6 * want.abs().max().item<double>())
        << c.shape << c.shift;
    EXPECT_TRUE(torch::equal(got, one)) << "thread count changed the result for " << c.shape;
    EXPECT_TRUE(torch::equal(add_group_norm_silu(shift, x, 4, w, b, 1e-5), got)) << "the shift on the left";
  }
  // A shift of the input's own shape, and one that enlarges it: LibTorch's three operators.
  const torch::Tensor x = torch::randn({2, 8, 4, 4});
  for (const torch::Tensor& shift :
       {torch::randn({2, 8, 4, 4}), torch::randn({2, 8, 1, 4}), torch::randn({2, 8, 1, 1})}) {
    const torch::Tensor input = shift.size(3) == 1 ? x.slice(0, 0, 1) : x;
    EXPECT_TRUE(torch::equal(add_group_norm_silu(input, shift, 4, w, b, 1e-5),
                             torch::silu(torch::group_norm(input + shift, 4, w, b, 1e-5))))
        << shift.sizes();
  }

  // (a + b) / c and (a + b) * c: LibTorch's values to float rounding; mixed shapes, dtypes and
  // strides are LibTorch's own.
  const torch::Tensor a = torch::randn({2, 8, 33, 7}), a2 = torch::randn({2, 8, 33, 7});
  EXPECT_LE(rel_diff(add_scale(a, a2, std::sqrt(2.0), true), (a + a2) / std::sqrt(2.0)), 1e-7);
  EXPECT_LE(rel_diff(add_scale(a, a2, 0.25, false), (a + a2) * 0.25), 1e-7);
  EXPECT_LE(rel_diff(add_scale(a, a2, 3, true), (a + a2) / 3), 1e-7);
  const torch::Tensor row = torch::randn({7}), at = a.transpose(2, 3), a64 = a.to(torch::kFloat64);
  EXPECT_TRUE(torch::equal(add_scale(a, row, 2.0, true), (a + row) / 2.0));
  EXPECT_TRUE(torch::equal(add_scale(at, at, 2.0, false), (at + at) * 2.0));
  EXPECT_TRUE(torch::equal(add_scale(a64, a64, 3, true), (a64 + a64) / 3));

  // In a network, through optimize_for_cpu.
  torch::jit::Module m("Additions");
  m.register_parameter("w", w, false);
  m.register_parameter("b", b, false);
  m.register_parameter("k", torch::randn({8, 8, 3, 3}) * 0.1, false);
  m.define(R"(
def forward(self, x, e):
    h = torch.silu(torch.group_norm(x + e[:, :, None, None], 4, self.w, self.b, 1e-5))
    g = h + e[:, :, None, None]
    assert g.dim() >= 2, "a group norm needs two dimensions"
    assert g.size(0) * g.size(1) // 8 * g.size(2) * g.size(3) != 1, "one value per group"
    h = torch.silu(torch.group_norm(g, 8, self.w, self.b, 1e-5))
    c = torch.conv2d(h, self.k, None, 1, 1)
    c = torch.silu(torch.group_norm(c.add_(e[:, :, None, None].to(c.dtype)), 4, self.w, self.b, 1e-5))
    d = torch.silu(torch.group_norm(e[:, :, None, None] + c, 4, self.w, self.b, 1e-5))
    v = x[:, 0:8]
    q = torch.silu(torch.group_norm(v.add_(e[:, :, None, None]), 4, self.w, self.b, 1e-5))
    s = (x + h) / 1.4142135623730951
    t = (s + h) * 0.5
    u = x + t
    k = torch.silu(torch.group_norm(u, 4, self.w, self.b, 1e-5)) + u
    return (k + x) / 2 + (t + s) * x + d + q
)");
  m.eval();
  bool hit = true;
  torch::jit::Module frozen = frozen_for_cpu(m, {"forward"}, "", &hit);
  std::shared_ptr<torch::jit::Graph> graph = frozen.get_method("forward").graph()->copy();
  // Fused: the additions before a group norm + SiLU (the second one's sum also read by shape checks
  // like those torch.nn.functional.group_norm scripts: aten::dim in PyTorch 2, aten::size; the third
  // in place on a convolution's output, whose dtype it reads first, as EDM does; the fourth with the
  // shift on the left), and the scaled sums s, t and (k + x) / 2. Left alone: the in-place addition
  // to v, a view of x whose change s reads; u, also used elsewhere; and (t + s) * x, a tensor factor.
  EXPECT_EQ(scoreflow::detail::nodes_of_kind(*graph, "aten::add_").size(), 2u) << *graph;
  EXPECT_EQ(scoreflow::detail::fuse_additions(graph), 7) << *graph;
  EXPECT_EQ(scoreflow::detail::count_fused_additions(*graph), 7);
  EXPECT_EQ(scoreflow::detail::fuse_group_norm_silu(graph), 2) << *graph;
  EXPECT_EQ(scoreflow::detail::count_group_norm_silu(*graph), 6);
  torch::jit::Module fast = optimize_for_cpu(frozen, {"forward"});
  EXPECT_EQ(scoreflow::detail::count_fused_additions(*fast.get_method("forward").graph()), 7);
  torch::NoGradGuard no_grad;
  const torch::Tensor input = torch::randn({3, 8, 6, 5}), e = torch::randn({3, 8});
  EXPECT_LE(rel_diff(fast.forward({input.clone(), e}).toTensor(), m.forward({input.clone(), e}).toTensor()), 1e-6);
  // The shape check still runs on the sum: one value per group is refused.
  try {
    fast.forward({torch::randn({1, 8, 1, 1}), torch::randn({1, 8})});
    ADD_FAILURE() << "one value per group was not refused";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("one value per group"), std::string::npos) << e.what();
  }
}

// The library's parallel loops (the fused group norm, the exact oracles' kernel) use every intra-op
// thread: at::parallel_for only does so in files compiled with OpenMP, which CMakeLists.txt arranges
// for GCC (the oracles' kernel ran on one thread for six sessions before this was noticed).
TEST(CpuFastPath, TheLibrarysParallelLoopsUseTheIntraOpThreads) {
#if defined(__GNUC__) && !defined(__clang__)
  ThreadCount threads(2);
  EXPECT_EQ(scoreflow::detail::parallel_for_threads(8), 2);
  ThreadCount one(1);
  EXPECT_EQ(scoreflow::detail::parallel_for_threads(8), 1);
#else
  GTEST_SKIP() << "OpenMP is arranged for GCC builds only";
#endif
}

// Thread teams (LoadOptions::cpu_teams): a batch split into contiguous parts run at once, each
// with a share of the intra-op threads.
TEST(CpuTeams, TheRuleKeepsAtLeastFourThreadsPerTeamWhenAutomatic) {
  using scoreflow::detail::cpu_team_count;
  EXPECT_EQ(cpu_team_count(64, 16, 0), 4);
  EXPECT_EQ(cpu_team_count(32, 16, 0), 4);
  EXPECT_EQ(cpu_team_count(31, 16, 0), 1);  // smaller calls: one team
  EXPECT_EQ(cpu_team_count(8, 16, 0), 1);
  EXPECT_EQ(cpu_team_count(1, 16, 0), 1);
  EXPECT_EQ(cpu_team_count(64, 8, 0), 2);
  EXPECT_EQ(cpu_team_count(64, 7, 0), 1);  // off below 8 threads
  EXPECT_EQ(cpu_team_count(64, 2, 0), 1);
  EXPECT_EQ(cpu_team_count(8, 16, 1), 1);  // 1: off
  EXPECT_EQ(cpu_team_count(8, 16, 3), 3);  // N: at most N, batch rows and threads
  EXPECT_EQ(cpu_team_count(2, 16, 3), 2);
  EXPECT_EQ(cpu_team_count(8, 2, 3), 2);
  EXPECT_EQ(LoadOptions().cpu_teams, 0);  // automatic by default (docs/performance.md, "CPU", session 17)
}

TEST(CpuTeams, PartsRunAtOnceWithTheirShareOfThreadsAndErrorsComeBack) {
  const int caller = at::get_num_threads();
  std::atomic<int> arrived{0};
  std::vector<int> threads(3, 0), saw(3, 0);
  scoreflow::detail::run_on_cpu_teams(3, 12, [&](int k) {
    threads[k] = at::get_num_threads();
    ++arrived;
    // Every part waits for the others: only concurrent parts all see 3.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (arrived.load() < 3 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    saw[k] = arrived.load();
  });
  EXPECT_EQ(saw, std::vector<int>({3, 3, 3}));
  EXPECT_EQ(threads, std::vector<int>({4, 4, 4}));  // 12 threads over 3 teams
  EXPECT_EQ(at::get_num_threads(), caller);         // the caller's own count is kept
  std::vector<int> ran(3, 0);
  try {
    scoreflow::detail::run_on_cpu_teams(3, 12, [&](int k) {
      ran[k] = 1;
      if (k == 1) throw std::runtime_error("part 1 failed");
    });
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "part 1 failed");
  }
  EXPECT_EQ(ran, std::vector<int>({1, 1, 1}));  // the other parts still ran to the end
}

TEST(CpuTeams, ACallOfSevenRowsRunsAsThreeContiguousParts) {
  // forward returns the number of rows it was given, so each part's rows carry their part's size.
  torch::jit::Module m("RowCount");
  m.define(R"(
def forward(self, x, t):
    return x * 0.0 + float(x.size(0)) + 0.0 * t.view(-1, 1, 1, 1)
)");
  const std::string path = ::testing::TempDir() + "/cpu_row_count_" + std::to_string(getpid()) + ".pt";
  m.save(path, {{"scoreflow.json", R"({"prediction":"x0","schedule":{"type":"edm"},"time_input":"sigma",
      "shape":[1,2,2]})"}});
  ThreadCount four(4);
  LoadOptions three;
  three.cpu_teams = 3;
  auto model = open_model(path, "", {}, torch::kCPU, three);
  EXPECT_EQ(cpu_team_limit(*model), 3);
  const torch::Tensor d = model->denoise(torch::zeros({7, 1, 2, 2}), {1.0}, {});
  const torch::Tensor rows = d.flatten(1).select(1, 0).to(torch::kFloat64);
  EXPECT_TRUE(torch::equal(rows, torch::tensor({2., 2., 2., 2., 3., 3., 3.}, torch::kFloat64))) << rows;
  EXPECT_GE(scoreflow::detail::cpu_team_workers(), 3);
  EXPECT_EQ(model->denoise(torch::zeros({1, 1, 2, 2}), {1.0}, {}).flatten()[0].item<double>(), 1.0);  // one row: whole
  EXPECT_EQ(scoreflow::detail::cpu_team_workers(), 0);  // and the idle workers are ended
  const torch::Tensor again = model->denoise(torch::zeros({4, 1, 2, 2}), {1.0}, {}).flatten(1).select(1, 0);
  EXPECT_TRUE(torch::equal(again.to(torch::kFloat64), torch::tensor({1., 1., 2., 2.}, torch::kFloat64))) << again;
  EXPECT_EQ(scoreflow::detail::cpu_team_workers(), 3);
  LoadOptions off;
  off.cpu_teams = 1;
  EXPECT_EQ(open_model(path, "", {}, torch::kCPU, off)
                ->denoise(torch::zeros({7, 1, 2, 2}), {1.0}, {})
                .flatten()[0]
                .item<double>(),
            7.0);
}

TEST(CpuTeams, SplitCallsGiveTheWholeCallsOutputs) {
  ThreadCount four(4);
  const std::string path = kFixtures + "/tiny_eps.pt";
  LoadOptions one, three;
  one.cpu_teams = 1;
  three.cpu_teams = 3;
  auto whole = open_model(path, "", {}, torch::kCPU, one);
  auto split = open_model(path, "", {}, torch::kCPU, three);
  EXPECT_EQ(cpu_team_limit(*whole), 1);
  EXPECT_EQ(cpu_team_limit(*split), 3);
  torch::manual_seed(5);
  const torch::Tensor x = torch::randn({7, 1, 8, 8}) * 2;
  std::vector<double> sigmas;  // one sigma per row: the time input is split with the rows
  for (int i = 0; i < 7; ++i) sigmas.push_back(0.3 + 0.5 * i);
  EXPECT_LE(rel_diff(split->denoise(x, sigmas, {}), whole->denoise(x, sigmas, {})), 1e-6);
  EXPECT_LE(rel_diff(split->denoise(x, {1.5}, {}), whole->denoise(x, {1.5}, {})), 1e-6);
  LoadOptions fast_split = optimized(fresh_cache("teams"));  // the optimised module, in parts
  fast_split.cpu_teams = 3;
  auto fast = open_model(path, "", {}, torch::kCPU, fast_split);
  ASSERT_TRUE(cpu_optimization(*fast).active) << cpu_optimization(*fast).note;
  EXPECT_LE(rel_diff(fast->denoise(x, sigmas, {}), whole->denoise(x, sigmas, {})), 1e-4);
  auto sampler = make_sampler("dpmpp_2m");
  SampleJob job;
  job.sigmas = make_sigmas("karras", 6, whole->metadata().schedule, {});
  job.seeds = {0, 1, 2, 3, 4};
  job.batch = 5;
  EXPECT_LE(rel_diff(run_sampler(*sampler, split, job).samples, run_sampler(*sampler, whole, job).samples), 1e-5);
}

TEST(CpuFastPath, TheFirstStoredChoiceStays) {
  const std::string dir = fresh_cache("first"), file = dir + "/m.choice.json";
  EXPECT_FALSE(read_cpu_choice(file).has_value());
  EXPECT_EQ(store_cpu_choice(file, {8, {2, 9}, {1, 7}}).max_batch, 8);
  const CpuChoice second = store_cpu_choice(file, {0, {1, 5}, {2, 6}});
  EXPECT_EQ(second.max_batch, 8);
  EXPECT_EQ(second.plain_ms, (std::vector<double>{2, 9}));
  EXPECT_EQ(read_cpu_choice(file)->optimized_ms, (std::vector<double>{1, 7}));
  std::ofstream(file) << "{not json";
  EXPECT_FALSE(read_cpu_choice(file).has_value());
  // Another thread count, CPU or accelerated module keeps its own choice.
  EXPECT_NE(cpu_choice_file(dir + "/a.frozen.pt", 1), cpu_choice_file(dir + "/a.frozen.pt", 2));
  EXPECT_NE(cpu_choice_file(dir + "/a.frozen.pt", 1), cpu_choice_file(dir + "/a.frozen.pt", 1, "fused"));
  EXPECT_EQ(cpu_choice_file("", 1), "");
}

TEST(CpuFastPath, CliTurnsItOnByDefaultAndOffWithNoOptimize) {
  setenv("SCOREFLOW_CACHE_DIR", fresh_cache("cli").c_str(), 1);
  const std::string model = "--model " + kFixtures + "/tiny_eps.pt";
  auto on = testing_cli::run("info --json " + model);
  ASSERT_EQ(on.code, 0) << on.err;
  auto doc = nlohmann::json::parse(on.out);
  // On by default: frozen, probed, and its batch limit timed at load.
  EXPECT_EQ(doc["cpu_path"]["choice"], "timed") << on.out;
  EXPECT_EQ(doc["cpu_path"]["optimized"].get<bool>(), doc["cpu_path"]["max_batch"].get<int>() > 0) << on.out;
  auto again = testing_cli::run("info --json " + model);
  ASSERT_EQ(again.code, 0) << again.err;
  const auto doc2 = nlohmann::json::parse(again.out);
  EXPECT_EQ(doc2["cpu_path"]["choice"], "cached") << again.out;
  // The frozen module comes from the cache; a stored "plain is faster" builds nothing at all.
  EXPECT_EQ(doc2["cpu_path"]["cache_hit"].get<bool>(), doc["cpu_path"]["optimized"].get<bool>()) << again.out;
  EXPECT_EQ(doc2["cpu_path"]["max_batch"], doc["cpu_path"]["max_batch"]);
  auto off = testing_cli::run("info --json --no-optimize " + model);
  ASSERT_EQ(off.code, 0) << off.err;
  doc = nlohmann::json::parse(off.out);
  EXPECT_FALSE(doc["cpu_path"]["optimized"].get<bool>());
  EXPECT_NE(doc["cpu_path"]["note"].get<std::string>().find("--no-optimize"), std::string::npos);
  auto bad = testing_cli::run("info --json --cpu-module turbo " + model);
  EXPECT_NE(bad.code, 0);
  EXPECT_EQ(bad.err, "error: --cpu-module must be optimized or fused, got 'turbo'\n");
  EXPECT_TRUE(bad.out.empty()) << bad.out;
  unsetenv("SCOREFLOW_CACHE_DIR");
}

// `.pt2` packages (torch.export + AOTInductor) need LibTorch >= 2.6; this build refuses them by name.
TEST(Pt2Package, ABuildBeforeLibTorch26RefusesItNamingTheBuildItNeeds) {
  if (aoti_available()) GTEST_SKIP() << "this build loads .pt2 packages";
  const std::string path = ::testing::TempDir() + "/package_" + std::to_string(getpid()) + ".pt2";
  std::ofstream(path, std::ios::binary) << "PK\x03\x04 not really a package";
  try {
    open_model(path);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'" + path + "' is a torch.export/AOTInductor package (.pt2)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("LibTorch >= 2.6"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::string("this build has LibTorch ") + TORCH_VERSION), std::string::npos) << msg;
  }
  testing_cli::expect_refused("sample --model " + path + " --sampler euler --steps 2 --seeds 0 --npz " + path + ".npz",
                              "needs scoreflow built against LibTorch >= 2.6", path + ".npz");
}

TEST(Pt2Package, TheExportScriptRefusesATorchBefore26) {
  const std::string base = ::testing::TempDir() + "/export_pt2_" + std::to_string(getpid());
  const std::string cmd = "/usr/bin/python3 " + std::string(SCOREFLOW_SOURCE_DIR) + "/scripts/export_pt2.py --demo " +
                          SCOREFLOW_SOURCE_DIR + "/models/fashion_ddpm.pt --out " + base + ".pt2 --device cpu >" +
                          base + ".out 2>" + base + ".err";
  const int status = std::system(cmd.c_str());
  std::ifstream in(base + ".err");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string err = ss.str();
  if (err.empty() && status == 0) GTEST_SKIP() << "this Python has torch >= 2.6";
  EXPECT_NE(status, 0);
  EXPECT_EQ(err.rfind("error: export_pt2.py needs PyTorch >= 2.6", 0), 0u) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_FALSE(std::filesystem::exists(base + ".pt2"));
}
