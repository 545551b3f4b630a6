// Named conditioning inputs, guidance on them (interval, rescale), latent decoders: a fixture
// network built here whose D is linear in its two conditions, so every value is computed by hand.
#include "scoreflow/conditioning.h"

#include <gtest/gtest.h>
#include <torch/script.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "scoreflow/amed.h"
#include "scoreflow/error.h"
#include "scoreflow/latent.h"
#include "scoreflow/model.h"
#include "scoreflow/npy.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "scoreflow/score_matching.h"
#include "support/cli_run.h"

using namespace scoreflow;

namespace {

// EDM schedule (α = 1), x0 prediction, t = σ: D(x, σ) = a·x + mean_k context[k] + 2·pooled, the
// conditions "context" [3, 2] and "pooled" [2]; shape [2]. `decode` doubles the latent.
std::string vector_net(double a, const std::string& extra_meta = "", bool stored = false) {
  torch::jit::Module m("CondNet");
  if (stored) {
    // Unconditional values stored in the archive: context without its batch dim, pooled with it.
    m.register_attribute("uncond_context", c10::TensorType::get(), torch::full({3, 2}, 0.5));
    m.register_attribute("uncond_pooled", c10::TensorType::get(), torch::tensor({{1.0f, -1.0f}}));
  }
  m.define("def forward(self, x, t, context, pooled):\n    return " + std::to_string(a) +
           " * x + context.mean(1) + 2.0 * pooled\n");
  // Named after the running test: ctest runs each test in its own process, two at a time, and a
  // per-process counter alone gave two concurrent tests the same file.
  static int counter = 0;
  const std::string path = ::testing::TempDir() + "/cond_net_" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
                           std::to_string(counter++) + ".pt";
  const std::string meta =
      R"({"prediction":"x0","schedule":{"type":"edm"},"time_input":"sigma","shape":[2],"data_range":[-10,10],)"
      R"("conditions":[{"name":"context","shape":[3,2]},{"name":"pooled","shape":[2],"dtype":"float32"}])" +
      extra_meta + "}";
  m.save(path, {{"scoreflow.json", meta}});
  return path;
}

// A latent model: latents [4, 2, 2], D = the scalar condition "pooled" everywhere (so a sample is
// its row's value); `decode` upsamples channels 0..2 by 2 → images [3, 4, 4]; `encode` averages
// 2×2 blocks back and applies the scale and shift (channel 3 is 0).
std::string latent_net(const std::string& dir) {
  torch::jit::Module m("LatentNet");
  m.define(
      "def forward(self, x, t, pooled):\n"
      "    return 0.0 * x + pooled.view(-1, 1, 1, 1)\n"
      "\n"
      "def decode(self, z):\n"
      "    return z[:, 0:3].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)\n"
      "\n"
      "def encode(self, img):\n"
      "    p = img.reshape([img.size(0), 3, 2, 2, 2, 2]).mean([3, 5])\n"
      "    return torch.cat([(p - 0.1) * 0.5, torch.zeros_like(p[:, 0:1])], 1)\n");
  const std::string path = dir + "/latent.pt";
  m.save(path, {{"scoreflow.json",
                 R"({"prediction":"x0","schedule":{"type":"edm"},"time_input":"sigma","shape":[4,2,2],)"
                 R"("conditions":[{"name":"pooled","shape":[]}],)"
                 R"("decoder":{"method":"decode","scale":0.5,"shift":0.1,"image_shape":[3,4,4],"image_range":[-1,1]},)"
                 R"("encoder":{"method":"encode"}})"}});
  return path;
}

torch::Tensor ctx(double v) { return torch::full({1, 3, 2}, v); }
torch::Tensor pooled(double p0, double p1) { return torch::tensor({{p0, p1}}, torch::kFloat32); }

/// Expects `fn` to throw an Error containing every needle.
template <typename Fn>
void expect_error(Fn fn, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Conditioning, MetadataDeclaresInputsInOrder) {
  auto model = open_model(vector_net(0.5, R"(,"uncond":"zeros")"));
  const auto& c = model->metadata().conditions;
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].name, "context");
  EXPECT_EQ(c[0].shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(c[0].dtype, torch::kFloat32);
  EXPECT_EQ(c[1].name, "pooled");
  EXPECT_EQ(model->metadata().uncond, UncondSource::Zeros);
  // Bad declarations name the field.
  const std::string base = R"({"prediction":"x0","schedule":{"type":"edm"},"time_input":"sigma","shape":[2],)";
  expect_error(
      [&] { resolve_metadata(base + R"("conditions":[{"name":"c","shape":[2],"dtype":"float16"}]})", "", {}, "m"); },
      {"conditions[0].dtype", "float16", "float32, int64, int32"});
  expect_error(
      [&] {
        resolve_metadata(base + R"("conditions":[{"name":"c","shape":[2]},{"name":"c","shape":[1]}]})", "", {}, "m");
      },
      {"conditions[1].name", "repeats"});
  expect_error([&] { resolve_metadata(base + R"("uncond":"zeros"})", "", {}, "m"); }, {"'uncond'", "no 'conditions'"});
  expect_error(
      [&] {
        resolve_metadata(base + R"("decoder":{"method":"decode","scale":0,"image_shape":[3,4,4]}})", "", {}, "m");
      },
      {"decoder.scale", "non-zero"});
  expect_error([&] { resolve_metadata(base + R"("encoder":{"method":"encode"}})", "", {}, "m"); },
               {"'encoder' needs 'decoder'", "image_shape"});
  // forward must take the declared conditions after (x, t[, y]).
  expect_error(
      [&] {
        open_model(vector_net(0.5), "",
                   {R"(conditions=[{"name":"a","shape":[1]},{"name":"b","shape":[1]},{"name":"c","shape":[1]}])"});
      },
      {"forward takes 4 inputs", "declares 3 conditions", "forward(x, t, a, b, c)"});
}

TEST(Conditioning, DenoiserPassesEachSampleItsConditions) {
  auto model = open_model(vector_net(0.5));
  torch::Tensor x = torch::tensor({{1.0f, 3.0f}, {-2.0f, 4.0f}});
  // Per-row conditions: D_b = 0.5 x_b + mean(context_b) + 2 pooled_b.
  Conditioning cond;
  cond.conds = {torch::cat({ctx(1), ctx(-1)}), torch::cat({pooled(0.5, -0.5), pooled(0, 2)})};
  torch::Tensor d = Denoiser(model, cond)(x, 1.0);
  EXPECT_TRUE(torch::allclose(d, torch::tensor({{0.5f + 1 + 1, 1.5f + 1 - 1}, {-1.0f - 1 + 0, 2.0f - 1 + 4}}))) << d;
  // One row is shared by the batch.
  cond.conds = {ctx(1), pooled(0.5, -0.5)};
  d = Denoiser(model, cond)(x, 1.0);
  EXPECT_TRUE(torch::allclose(d, torch::tensor({{2.5f, 1.5f}, {1.0f, 2.0f}}))) << d;
  // A conditioned model refuses to run without its inputs, or with a wrong shape.
  expect_error([&] { Denoiser(model, Conditioning{}); }, {"takes conditioning inputs (context, pooled)", "not given"});
  cond.conds = {torch::zeros({1, 3, 3}), pooled(0, 0)};
  expect_error([&] { Denoiser(model, cond); }, {"cond 'context'", "[P, 3, 2]"});
}

TEST(Conditioning, GuidanceIsTheHandComputedCombination) {
  // σ = 1, x = [1, 3]; cond: context 1, pooled [0.5, −0.5] → c = [2, 0]; uncond zeros → c = [0, 0].
  // D_c = [2.5, 1.5], D_u = [0.5, 1.5]; W = 3: D = D_u + 3 (D_c − D_u) = [6.5, 1.5].
  auto model = open_model(vector_net(0.5, R"(,"uncond":"zeros")"));
  torch::Tensor x = torch::tensor({{1.0f, 3.0f}});
  Conditioning cond;
  cond.guidance = 3;
  cond.conds = {ctx(1), pooled(0.5, -0.5)};
  Denoiser guided(model, cond);
  const torch::Tensor d = guided(x, 1.0);
  EXPECT_TRUE(torch::allclose(d, torch::tensor({{6.5f, 1.5f}}))) << d;
  EXPECT_EQ(guided.nfe(), 1);  // one evaluation: the two halves ran as one batch
  // Explicit unconditional values (a negative prompt): context −1, pooled [1, 1] → c_u = −1 + 2 =
  // [1, 1], D_u = [1.5, 2.5]; D = [1.5 + 3·1, 2.5 + 3·(−1)] = [4.5, −0.5].
  cond.unconds = {ctx(-1), pooled(1, 1)};
  EXPECT_TRUE(torch::allclose(Denoiser(model, cond)(x, 1.0), torch::tensor({{4.5f, -0.5f}})));
  // Stored unconditional values (attributes uncond_context = 0.5, uncond_pooled = [1, −1]):
  // c_u = [2.5, −1.5], D_u = [3, 0]; D = [3 + 3·(−0.5), 0 + 3·1.5] = [1.5, 4.5].
  auto stored = open_model(vector_net(0.5, R"(,"uncond":"stored")", /*stored=*/true));
  cond.unconds.clear();
  EXPECT_TRUE(torch::allclose(Denoiser(stored, cond)(x, 1.0), torch::tensor({{1.5f, 4.5f}})));
  // No unconditional source: refused, naming both ways to give one.
  expect_error([&] { Denoiser(open_model(vector_net(0.5)), cond); }, {"guidance 3", "uncond", "metadata 'uncond'"});
  expect_error([&] { open_model(vector_net(0.5, R"(,"uncond":"stored")")); }, {"no tensor attribute 'uncond_context'"});
}

TEST(Conditioning, BatchedGuidanceEqualsSeparateCalls) {
  // A nonlinear network: the halves must be split back in the right order.
  torch::jit::Module m("Nonlinear");
  m.define(
      "def forward(self, x, t, context, pooled):\n    return torch.tanh(x * t.view(-1, 1) + context.mean(1)) * "
      "pooled\n");
  const std::string path = ::testing::TempDir() + "/cond_nonlinear.pt";
  m.save(path,
         {{"scoreflow.json", R"({"prediction":"x0","schedule":{"type":"edm"},"time_input":"sigma","shape":[2],)"
                             R"("conditions":[{"name":"context","shape":[3,2]},{"name":"pooled","shape":[2]}]})"}});
  auto model = open_model(path);
  torch::manual_seed(3);
  torch::Tensor x = torch::randn({3, 2});
  Conditioning c, u, g;
  c.conds = {torch::randn({3, 3, 2}), torch::randn({3, 2})};
  u.conds = {torch::randn({3, 3, 2}), torch::randn({3, 2})};
  g.conds = c.conds;
  g.unconds = u.conds;
  g.guidance = 2.5;
  for (double sigma : {0.3, 2.0}) {
    torch::Tensor dc = Denoiser(model, c)(x, sigma), du = Denoiser(model, u)(x, sigma);
    EXPECT_TRUE(torch::allclose(Denoiser(model, g)(x, sigma), du + 2.5 * (dc - du), 1e-5, 1e-6));
  }
}

TEST(Conditioning, GuidanceIntervalAppliesOnlyInsideIt) {
  auto model = open_model(vector_net(0.5, R"(,"uncond":"zeros")"));
  Conditioning cond;
  cond.guidance = 3;
  cond.conds = {ctx(1), pooled(0.5, -0.5)};
  cond.guidance_lo = 0.5, cond.guidance_hi = 1.5;
  Denoiser d(model, cond);
  torch::Tensor x = torch::tensor({{1.0f, 3.0f}, {1.0f, 3.0f}});
  // σ = 1 inside: guided [6.5, 1.5]; σ = 2 outside: D_c = [2.5, 1.5] (this D ignores σ).
  EXPECT_TRUE(torch::allclose(d(x, 1.0), torch::tensor({{6.5f, 1.5f}, {6.5f, 1.5f}})));
  EXPECT_TRUE(torch::allclose(d(x, 2.0), torch::tensor({{2.5f, 1.5f}, {2.5f, 1.5f}})));
  EXPECT_TRUE(torch::allclose(d(x, std::vector<double>{1.0, 2.0}), torch::tensor({{6.5f, 1.5f}, {2.5f, 1.5f}})));
  cond.guidance_lo = 2, cond.guidance_hi = 1;
  expect_error([&] { Denoiser(model, cond); }, {"guidance_interval", "lo <= hi"});
}

TEST(Conditioning, GuidanceRescaleMatchesDiffusersOnTheNoisePrediction) {
  // From the guidance test: x = [1, 3], D_c = [2.5, 1.5], D_g = [6.5, 1.5]. At σ: ε_c = (x − D_c)/σ
  // = [−1.5, 1.5]/σ, ε_g = [−5.5, 1.5]/σ; unbiased std over 2 values is |a − b|/√2: 3/(√2σ) and
  // 7/(√2σ), ratio 3/7. φ = 0.7: ε = ε_g (0.7·3/7 + 0.3) = 0.6 ε_g → D = x − σ ε = [4.3, 2.1].
  // φ = 1: ε = (3/7) ε_g → D = [1 + 33/14, 3 − 9/14].
  auto model = open_model(vector_net(0.5, R"(,"uncond":"zeros")"));
  Conditioning cond;
  cond.guidance = 3;
  cond.conds = {ctx(1), pooled(0.5, -0.5)};
  torch::Tensor x = torch::tensor({{1.0f, 3.0f}});
  for (double sigma : {1.0, 2.0}) {  // the ratio does not depend on σ
    cond.rescale = 0.7;
    EXPECT_TRUE(torch::allclose(Denoiser(model, cond)(x, sigma), torch::tensor({{4.3f, 2.1f}}), 1e-5, 1e-6));
    cond.rescale = 1.0;
    EXPECT_TRUE(torch::allclose(Denoiser(model, cond)(x, sigma), torch::tensor({{1.0f + 33.0f / 14, 3.0f - 9.0f / 14}}),
                                1e-5, 1e-6));
  }
  cond.rescale = 1.5;
  expect_error([&] { Denoiser(model, cond); }, {"guidance_rescale", "[0, 1]"});
}

TEST(Conditioning, TablesRowsAndHostileArrays) {
  std::vector<ConditionSpec> specs{{"context", {3, 2}, torch::kFloat32}, {"ids", {4}, torch::kLong}};
  auto tables = check_condition_tables(
      specs, {{"context", torch::zeros({5, 3, 2}, torch::kFloat64)}, {"ids", torch::zeros({1, 4}, torch::kInt)}},
      "cond");
  EXPECT_EQ(tables.rows, 5);
  EXPECT_EQ(tables.values[0].scalar_type(), torch::kFloat32);
  EXPECT_EQ(tables.values[1].scalar_type(), torch::kLong);
  EXPECT_EQ(condition_rows(7, 5, {}), (std::vector<int64_t>{0, 1, 2, 3, 4, 0, 1}));
  EXPECT_EQ(condition_rows(3, 5, {4, 4, 0}), (std::vector<int64_t>{4, 4, 0}));
  expect_error([&] { condition_rows(3, 5, {1, 5, 0}); }, {"cond_rows", "entry 1 is row 5", "5 rows"});
  expect_error([&] { condition_rows(3, 5, {1, 2}); }, {"cond_rows", "2 rows for 3 samples"});
  const auto ok_ids = torch::zeros({1, 4}, torch::kLong);
  const auto check = [&](std::map<std::string, torch::Tensor> arrays, std::vector<std::string> needles) {
    expect_error([&] { check_condition_tables(specs, arrays, "cond"); }, needles);
  };
  check({{"context", torch::zeros({2, 3, 3})}, {"ids", ok_ids}},
        {"cond array 'context'", "[2, 3, 3]", "expected [P, 3, 2]"});
  check({{"context", torch::zeros({2, 3, 2})}, {"ids", ok_ids}, {"contxt", torch::zeros({1})}},
        {"'contxt' is not a condition", "context, ids"});
  check({{"ids", ok_ids}}, {"no array 'context'", "[P, 3, 2]"});
  check({{"context", torch::full({1, 3, 2}, NAN)}, {"ids", ok_ids}}, {"'context' has NaN or Inf"});
  check({{"context", torch::zeros({1, 3, 2}, torch::kLong)}, {"ids", ok_ids}},
        {"'context' has dtype int64", "float32"});
  check({{"context", torch::zeros({1, 3, 2})}, {"ids", torch::zeros({1, 4})}}, {"'ids' has dtype float32", "int64"});
  check({{"context", torch::zeros({2, 3, 2})}, {"ids", torch::zeros({3, 4}, torch::kLong)}},
        {"'context' has 2 rows", "3"});
}

TEST(Conditioning, RunSamplerGivesEachSeedItsRow) {
  // D = mean(context) + 2 pooled ignores x: Euler's last step to σ = 0 lands on it exactly.
  auto model = open_model(vector_net(0.0));
  SampleJob job;
  job.sigmas = {5.0, 1.0, 0.0};
  job.seeds = {10, 11, 12, 13, 14};
  job.batch = 2;
  job.cond = check_condition_tables(
      model->metadata().conditions,
      {{"context", ctx(0)}, {"pooled", torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {2.0f, 2.0f}})}}, "cond");
  job.cond_rows = condition_rows(5, job.cond.rows, {});
  auto r = run_sampler(*make_sampler("euler"), model, job);
  EXPECT_TRUE(
      torch::allclose(r.samples, torch::tensor({{2.0f, 0.0f}, {0.0f, 2.0f}, {4.0f, 4.0f}, {2.0f, 0.0f}, {0.0f, 2.0f}})))
      << r.samples;
  job.cond_rows = {2, 2, 0, 1, 2};
  r = run_sampler(*make_sampler("euler"), model, job);
  EXPECT_TRUE(torch::allclose(r.samples,
                              torch::tensor({{4.0f, 4.0f}, {4.0f, 4.0f}, {2.0f, 0.0f}, {0.0f, 2.0f}, {4.0f, 4.0f}})));
  job.cond = ConditionTables{};
  expect_error([&] { run_sampler(*make_sampler("euler"), model, job); }, {"context, pooled", "cond"});
}

TEST(Conditioning, AmedTrainingAsksForEachTrajectorysConditioning) {
  // Training and validation ask for trajectories [first, first + count) in order, from 0; the
  // Denoisers they build use what comes back (a conditioned model refuses to run without it).
  auto model = open_model(vector_net(0.5, R"(,"uncond":"zeros")"));
  AmedTrainOptions o;
  o.sigmas = {80.0, 5.0, 0.5, 0.002};
  o.num_trajectories = 6;
  o.batch = 4;
  std::vector<std::pair<int64_t, int64_t>> asked;
  o.conditioning = [&](int64_t first, int64_t count) {
    asked.emplace_back(first, count);
    Conditioning c;
    c.conds = {ctx(1), pooled(0.5, -0.5)};
    c.guidance = 2;
    return c;
  };
  AmedPredictor p = train_amed(model, o);
  EXPECT_EQ(asked, (std::vector<std::pair<int64_t, int64_t>>{{0, 4}, {4, 2}}));
  asked.clear();
  EXPECT_TRUE(std::isfinite(amed_validation_rms(model, o, p, 5, 1)));
  EXPECT_EQ(asked, (std::vector<std::pair<int64_t, int64_t>>{{0, 4}, {4, 1}}));
  o.conditioning = nullptr;
  expect_error([&] { train_amed(model, o); }, {"takes conditioning inputs (context, pooled)"});
}

TEST(LatentDecoder, DecodesScaledLatentsInBatches) {
  const std::string dir = testing_cli::fresh_dir("latent_decoder");
  auto model = open_model(latent_net(dir));
  ASSERT_TRUE(model->metadata().decoder.has_value());
  ImageDecoder dec = ImageDecoder::for_model(model);
  EXPECT_TRUE(dec.latent());
  EXPECT_EQ(dec.image_shape(), (std::vector<int64_t>{3, 4, 4}));
  torch::Tensor z = torch::arange(5 * 16, torch::kFloat32).reshape({5, 4, 2, 2}) / 100;
  torch::Tensor img = dec.images(z, 2);  // 3 decoder calls
  ASSERT_EQ(img.sizes(), (std::vector<int64_t>{5, 3, 4, 4}));
  // image = decode(z / scale + shift): pixel (2i + di, 2j + dj) of channel c is z[c, i, j]/0.5 + 0.1.
  for (int64_t n : {0, 4})
    for (int64_t c : {0, 2})
      EXPECT_NEAR(img[n][c][3][2].item<double>(), z[n][c][1][1].item<double>() / 0.5 + 0.1, 1e-6);
  // The identity for a pixel-space model.
  EXPECT_FALSE(ImageDecoder::for_model(open_model(vector_net(0.5))).latent());
  // A separate decoder archive with its own scoreflow.json: image = 2 (z / 4 − 1) per channel.
  torch::jit::Module sep("Decoder");
  sep.define("def dec(self, z):\n    return 2.0 * z[:, 0:1]\n");
  const std::string path = dir + "/decoder.pt";
  sep.save(path, {{"scoreflow.json", R"({"decoder":{"method":"dec","scale":4,"shift":-1,"image_shape":[1,2,2]}})"}});
  ImageDecoder other = ImageDecoder::from_file(path, model, torch::kCPU);
  img = other.images(z, 16);
  ASSERT_EQ(img.sizes(), (std::vector<int64_t>{5, 1, 2, 2}));
  EXPECT_NEAR(img[3][0][1][0].item<double>(), 2 * (z[3][0][1][0].item<double>() / 4 - 1), 1e-6);
  sep.save(path, {{"scoreflow.json", R"({"decoder":{"method":"dec","image_shape":[3,2,2]}})"}});
  expect_error([&] { ImageDecoder::from_file(path, model, torch::kCPU).images(z, 2); },
               {"returned shape [2, 1, 2, 2]", "expected [2, 3, 2, 2]"});
}

TEST(ConditioningCli, LatentSampleWritesDecodedImagesAndRows) {
  const std::string dir = testing_cli::fresh_dir("cond_cli");
  const std::string model = latent_net(dir);
  io::write_npz(dir + "/cond.npz", {{"pooled", io::from_tensor(torch::tensor({0.2f, -0.4f, 0.6f}))}});
  const std::string npz = dir + "/out.npz", grid = dir + "/grid.png";
  auto r = testing_cli::run("sample --model " + model + " --cond " + dir + "/cond.npz --cond-rows 2,0,1,1 --seeds 0-3" +
                            " --sampler euler --steps 3 --npz " + npz + " --out " + grid + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto arrays = io::read_npz(npz);
  EXPECT_EQ(arrays.at("samples").shape, (std::vector<int64_t>{4, 4, 2, 2}));  // latents
  EXPECT_EQ(arrays.at("images").shape, (std::vector<int64_t>{4, 4, 4, 3}));   // decoded NHWC
  EXPECT_TRUE(torch::equal(io::to_tensor(arrays.at("cond_rows")), torch::tensor({2, 0, 1, 1}, torch::kLong)));
  // D = pooled ⇒ sample 0 (row 2) is 0.6 everywhere; image = 0.6/0.5 + 0.1 = 1.3 → clipped to 255.
  // Sample 1 (row 0): 0.2/0.5 + 0.1 = 0.5 → (1.5/2)·255 = 191.25 → 191.
  // Sample 2 (row 1): −0.4/0.5 + 0.1 = −0.7 → (0.3/2)·255 = 38.25 → 38.
  torch::Tensor images = io::to_tensor(arrays.at("images"));
  EXPECT_EQ(images[0][0][0][0].item<int>(), 255);
  EXPECT_EQ(images[1][2][3][1].item<int>(), 191);
  EXPECT_EQ(images[2][1][0][2].item<int>(), 38);
  EXPECT_TRUE(std::filesystem::exists(grid));
  const auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc.at("cond_rows"), nlohmann::json({2, 0, 1, 1}));
  EXPECT_EQ(doc.at("latent"), true);
}

TEST(ConditioningCli, HostileCondFilesAreRefusedBeforeSampling) {
  const std::string dir = testing_cli::fresh_dir("cond_hostile");
  const std::string model = latent_net(dir), out = dir + "/out.npz";
  io::write_npz(dir + "/shape.npz", {{"pooled", io::from_tensor(torch::zeros({2, 3}))}});
  io::write_npz(dir + "/nan.npz", {{"pooled", io::from_tensor(torch::tensor({0.0f, NAN}))}});
  io::write_npz(dir + "/ok.npz", {{"pooled", io::from_tensor(torch::tensor({0.0f, 1.0f}))}});
  const std::string base = "sample --model " + model + " --seeds 0-2 --steps 2 --npz " + out + " --cond " + dir;
  testing_cli::expect_refused(base + "/shape.npz", "--cond array 'pooled' has shape [2, 3], expected [P]", out);
  testing_cli::expect_refused(base + "/nan.npz", "--cond array 'pooled' has NaN or Inf", out);
  testing_cli::expect_refused(base + "/ok.npz --cond-rows 0,1,2",
                              "--cond-rows entry 2 is row 2 but the conditioning arrays have 2 rows", out);
}

TEST(ConditioningCli, GuidanceFlagsGiveTheHandComputedSamples) {
  // D = mean(context) + 2 pooled ignores x, so Euler's last step to σ = 0 lands on the guided D.
  // cond: c_c = 1 + 2·[0.5, −0.5] = [2, 0]; uncond: c_u = −1 + 2·[1, 1] = [1, 1];
  // W = 3: D = c_u + 3 (c_c − c_u) = [4, −2]. With an interval holding none of the grid's σ: D = c_c.
  const std::string dir = testing_cli::fresh_dir("cond_guidance_cli");
  const std::string model = vector_net(0.0);
  io::write_npz(dir + "/cond.npz",
                {{"context", io::from_tensor(ctx(1))}, {"pooled", io::from_tensor(pooled(0.5, -0.5))}});
  io::write_npz(dir + "/uncond.npz",
                {{"context", io::from_tensor(ctx(-1))}, {"pooled", io::from_tensor(pooled(1, 1))}});
  const std::string base = "sample --model " + model + " --cond " + dir + "/cond.npz --uncond " + dir +
                           "/uncond.npz --guidance 3 --seeds 0-2 --sampler euler --steps 4 --npz ";
  auto r = testing_cli::run(base + dir + "/guided.npz");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(torch::allclose(io::to_tensor(io::read_npz(dir + "/guided.npz").at("samples")),
                              torch::tensor({4.0f, -2.0f}).expand({3, 2}), 1e-5, 1e-5));
  r = testing_cli::run(base + dir + "/outside.npz --guidance-interval 100,inf");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(torch::allclose(io::to_tensor(io::read_npz(dir + "/outside.npz").at("samples")),
                              torch::tensor({2.0f, 0.0f}).expand({3, 2}), 1e-5, 1e-5));
}

TEST(ConditioningCli, AShardUsesTheRowsOfItsSeedsInTheWholeList) {
  // Rows follow the seed's index in the full list (i mod P), so shard 1/2 of seeds 0-3 (batch 2)
  // holds indices 2, 3 → rows 2, 0, and its samples are the single run's last two, bit for bit.
  const std::string dir = testing_cli::fresh_dir("cond_shard_cli");
  const std::string model = vector_net(0.5);
  io::write_npz(dir + "/cond.npz", {{"context", io::from_tensor(torch::arange(18, torch::kFloat32).reshape({3, 3, 2}))},
                                    {"pooled", io::from_tensor(pooled(0.5, -0.5))}});
  const std::string base =
      "sample --model " + model + " --cond " + dir + "/cond.npz --seeds 0-3 --batch 2 --steps 3 --npz ";
  ASSERT_EQ(testing_cli::run(base + dir + "/all.npz").code, 0);
  auto r = testing_cli::run(base + dir + "/part.npz --shard 1/2");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto all = io::read_npz(dir + "/all.npz"), part = io::read_npz(dir + "/part.shard-1-of-2.npz");
  EXPECT_TRUE(torch::equal(io::to_tensor(all.at("cond_rows")), torch::tensor({0, 1, 2, 0}, torch::kLong)));
  EXPECT_TRUE(torch::equal(io::to_tensor(part.at("cond_rows")), torch::tensor({2, 0}, torch::kLong)));
  EXPECT_TRUE(torch::equal(io::to_tensor(part.at("samples")), io::to_tensor(all.at("samples")).narrow(0, 2, 2)));
}

TEST(ConditioningCli, EvalFidMeasuresDecodedImages) {
  // 6 samples, rows i mod 3 of pooled [0.2, −0.4, 0.6]; each decodes to a constant image of
  // v = pooled/0.5 + 0.1 ∈ {0.5, −0.7, 1.3} (48 values). Raw features against N(0, I) in 48-D:
  // μ = 0.3667·1, Σ = s²·11ᵀ with s² = 4.05333/5 (unbiased) = 0.810667, whose one eigenvalue is
  // 48 s² = 38.912. FD = ‖μ‖² + tr Σ + tr I − 2 tr Σ^½ = 6.4533 + 38.912 + 48 − 2·6.2380 = 80.889.
  const std::string dir = testing_cli::fresh_dir("cond_fid_cli");
  const std::string model = latent_net(dir);
  io::write_npz(dir + "/cond.npz", {{"pooled", io::from_tensor(torch::tensor({0.2f, -0.4f, 0.6f}))}});
  io::write_npz(dir + "/ref.npz", {{"mu", io::from_tensor(torch::zeros({48}, torch::kFloat64))},
                                   {"sigma", io::from_tensor(torch::eye(48, torch::kFloat64))}});
  auto r = testing_cli::run("eval fid --model " + model + " --cond " + dir + "/cond.npz --features none --seeds 0-5" +
                            " --sampler euler --steps 3 --ref " + dir + "/ref.npz --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NEAR(nlohmann::json::parse(r.out).at("fd").get<double>(), 80.889, 2e-3);
}

TEST(ConditioningCli, CompareFdReadsReferenceImagesForALatentModel) {
  // The samples decode to constant images v ∈ {0.5, −0.7, 1.3} (two each, as above). The reference
  // data are those six images plus 0.1 everywhere: same covariance, means 0.1 apart in each of the
  // 48 image values, so FD = 48 · 0.1² = 0.48. Read in the latent shape [4, 2, 2] they would not fit.
  const std::string dir = testing_cli::fresh_dir("cond_compare_fd");
  const std::string model = latent_net(dir);
  io::write_npz(dir + "/cond.npz", {{"pooled", io::from_tensor(torch::tensor({0.2f, -0.4f, 0.6f}))}});
  torch::Tensor v = torch::tensor({0.5, -0.7, 1.3, 0.5, -0.7, 1.3}, torch::kFloat32) + 0.1;
  io::write_npy(dir + "/ref.npy", io::from_tensor(v.view({6, 1, 1, 1}).expand({6, 3, 4, 4}).contiguous()));
  auto r = testing_cli::run("compare --model " + model + " --cond " + dir + "/cond.npz --metric fd --features none" +
                            " --ref-data " + dir + "/ref.npy --samplers euler --nfe 3 --seeds 0-5 --out-dir " + dir +
                            "/cmp --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto cells = nlohmann::json::parse(r.out).at("cells");
  ASSERT_EQ(cells.size(), 1u);
  EXPECT_NEAR(cells.at(0).at("metric").get<double>(), 0.48, 1e-3) << r.out;
}

TEST(LatentEncoder, DatasetCommandsSeeImagesEncodedInBatches) {
  // Five images [3, 4, 4]; the encoder's latents are (2×2 block means − 0.1) · 0.5, channel 3 zero.
  const std::string dir = testing_cli::fresh_dir("latent_encoder");
  auto model = open_model(latent_net(dir));
  torch::Tensor img = torch::rand({5, 3, 4, 4}, torch::TensorOptions().dtype(torch::kFloat32)) * 2 - 1;
  io::write_npy(dir + "/images.npy", io::from_tensor(img));
  torch::Tensor blocks = img.reshape({5, 3, 2, 2, 2, 2}).mean({3, 5});
  torch::Tensor want = torch::cat({(blocks - 0.1) * 0.5, torch::zeros({5, 1, 2, 2})}, 1);

  ModelDataOptions o;
  o.encode_batch = 2;  // three encoder calls
  auto data = open_model_dataset(dir + "/images.npy", model, o);
  EXPECT_EQ(data->size(), 5);
  EXPECT_EQ(data->shape(), (std::vector<int64_t>{4, 2, 2}));
  EXPECT_NE(data->describe().find("encode()"), std::string::npos) << data->describe();
  EXPECT_TRUE(torch::allclose(data->batch(0, 5), want, 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(data->batch(3, 2), want.narrow(0, 3, 2), 1e-6, 1e-6));
  // Decoding the latents gives the block-averaged images back.
  torch::Tensor back = ImageDecoder::for_model(model).images(data->batch(0, 5));
  EXPECT_TRUE(torch::allclose(back, blocks.repeat_interleave(2, 2).repeat_interleave(2, 3), 1e-5, 1e-5));

  // Score matching and the W2 bound see the same latents as their empirical target.
  eval::ExactTarget target(dir + "/images.npy", model, 4);
  EXPECT_EQ(target.size(), 4);
  EXPECT_EQ(target.dim(), 16);
  EXPECT_TRUE(torch::allclose(target.moments().first, want.narrow(0, 0, 4).reshape({4, 16}).mean(0).to(torch::kFloat64),
                              1e-6, 1e-6));
  // Images of another shape are refused naming the images' shape, not the latents'.
  io::write_npy(dir + "/small.npy", io::from_tensor(torch::zeros({2, 3, 2, 2})));
  expect_error([&] { open_model_dataset(dir + "/small.npy", model); }, {"small.npy", "3x4x4"});
}
