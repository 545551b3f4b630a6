// Conditional latent models in the dataset commands (ItemConditions), builtin:empirical in a latent
// model's space (encoder=), and chunked sampling with conditions resumed byte for byte.
#include <gtest/gtest.h>
#include <torch/script.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "scoreflow/conditioning.h"
#include "scoreflow/discrete_chain.h"
#include "scoreflow/empirical.h"
#include "scoreflow/error.h"
#include "scoreflow/gamma_estimation.h"
#include "scoreflow/gamma_table.h"
#include "scoreflow/jobs.h"
#include "scoreflow/latent.h"
#include "scoreflow/npy.h"
#include "scoreflow/registry.h"
#include "scoreflow/score_matching.h"
#include "scoreflow/wbound.h"
#include "support/cli_run.h"
#include "support/jobs_test_util.h"
#include "tests/support/error_text.h"

using namespace scoreflow;

namespace {

using Arrays = std::map<std::string, torch::Tensor>;

using scoreflow::testing_support::error_of;

// A conditional latent model: latents [4, 2, 2], a scalar condition "pooled", discrete VP schedule,
// x0 prediction F = 0.5·x_t + pooled; its stored unconditional pooled is 0.3. `encode` averages 2×2
// blocks of images [3, 4, 4] and applies scale and shift (channel 3 is 0); `decode` undoes it.
std::string cond_latent_net(const std::string& dir) {
  torch::jit::Module m("CondLatentNet");
  m.register_attribute("uncond_pooled", c10::TensorType::get(), torch::tensor(0.3f));
  m.define(
      "def forward(self, x, t, pooled):\n"
      "    return 0.5 * x + pooled.view(-1, 1, 1, 1)\n"
      "\n"
      "def decode(self, z):\n"
      "    return z[:, 0:3].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)\n"
      "\n"
      "def encode(self, img):\n"
      "    p = img.reshape([img.size(0), 3, 2, 2, 2, 2]).mean([3, 5])\n"
      "    return torch.cat([(p - 0.1) * 0.5, torch.zeros_like(p[:, 0:1])], 1)\n");
  const std::string path = dir + "/cond_latent.pt";
  m.save(path, {{"scoreflow.json",
                 R"({"prediction":"x0","schedule":{"type":"vp_discrete","betas":"linear"},"time_input":"index",)"
                 R"("shape":[4,2,2],"data_range":[-2,2],"conditions":[{"name":"pooled","shape":[]}],"uncond":"stored",)"
                 R"("decoder":{"method":"decode","scale":0.5,"shift":0.1,"image_shape":[3,4,4],"image_range":[-1,1]},)"
                 R"("encoder":{"method":"encode"}})"}});
  return path;
}

/// Six images [3, 4, 4] in [-1, 1] and their hand-encoded latents [6, 4, 2, 2].
std::pair<std::string, torch::Tensor> images(const std::string& dir) {
  torch::manual_seed(11);
  torch::Tensor img = torch::rand({6, 3, 4, 4}) * 2 - 1;
  const std::string path = dir + "/images.npy";
  io::write_npy(path, io::from_tensor(img));
  torch::Tensor blocks = img.reshape({6, 3, 2, 2, 2, 2}).mean({3, 5});
  return {path, torch::cat({(blocks - 0.1) * 0.5, torch::zeros({6, 1, 2, 2})}, 1)};
}

/// Γ at three timesteps over the six images in batches of 3, and each batch's statistics.
struct GammaRun {
  std::vector<double> gamma;
  std::vector<GammaBatchStats> batches;
};
GammaRun gamma_run(const std::shared_ptr<Model>& model, const io::Dataset& data, const ItemConditions& c) {
  const DiscreteChain chain = chain_of(*model);
  GammaEstimation job;
  job.timesteps = {1, 500, 1000};
  job.num_images = 6;
  job.batch = 3;
  job.conditions = c;
  GammaRun r;
  job.on_batch = [&](int64_t, int64_t, const GammaBatchStats& s) { r.batches.push_back(s); };
  GammaTable table(gamma_meta_for(*model), chain.num_steps());
  estimate_gamma(*model, data, job, table);
  for (const auto& e : table.entries()) r.gamma.push_back(e.gamma);
  return r;
}

}  // namespace

TEST(LatentConditions, DatasetCommandsUseTheUnconditionalInputByDefault) {
  const std::string dir = testing_cli::fresh_dir("latent_conditions");
  auto model = open_model(cond_latent_net(dir));
  const std::string path = images(dir).first;
  auto data = open_model_dataset(path, model);
  // The default is the stored unconditional value, exactly as if it were given as uncond arrays.
  const ItemConditions by_default = item_conditions(*model, 6);
  EXPECT_TRUE(by_default.unconditional());
  EXPECT_EQ(by_default.source, "metadata uncond (stored)");
  EXPECT_NE(by_default.note(*model).find("unconditional input"), std::string::npos) << by_default.note(*model);
  const ItemConditions given = item_conditions(*model, 6, {}, Arrays{{"pooled", torch::tensor({0.3f})}});
  EXPECT_EQ(by_default.fingerprint(), given.fingerprint());
  const GammaRun a = gamma_run(model, *data, by_default), b = gamma_run(model, *data, given);
  EXPECT_EQ(a.gamma, b.gamma);
  // Another value changes Γ: the conditions do reach the network.
  const GammaRun other = gamma_run(model, *data, item_conditions(*model, 6, Arrays{{"pooled", torch::tensor({2.0f})}}));
  EXPECT_NE(other.gamma, a.gamma);

  // Score matching and the W2 bound (Lipschitz points, coupling ODE) run on the same default.
  eval::ExactTarget target(path, model);
  ASSERT_EQ(target.size(), 6);
  eval::ScoreMatchingOptions sm;
  sm.sigmas = {0.5, 3.0};
  sm.num_images = 4;
  sm.batch = 3;
  sm.conditions = item_conditions(*model, target.size());
  const auto rows_default = eval::score_matching(*model, target, sm);
  sm.conditions = given;
  const auto rows_given = eval::score_matching(*model, target, sm);
  ASSERT_EQ(rows_default.size(), 2u);
  for (size_t k = 0; k < 2; ++k) EXPECT_EQ(rows_default[k].sm, rows_given[k].sm);
  eval::WBoundOptions w;
  w.sigmas = {0.5, 3.0};
  w.lipschitz_points = 2;
  w.iterations = 3;
  w.num_images = 4;
  w.batch = 3;
  w.ode_steps = 3;
  w.ode_samples = 3;
  w.conditions = by_default;
  const eval::WBoundReport r1 = eval::wasserstein_bound(model, target, w);
  w.conditions = given;
  const eval::WBoundReport r2 = eval::wasserstein_bound(model, target, w);
  ASSERT_EQ(r1.rows.size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    // (The power iteration gives NaN on this linear TorchScript fixture, with or without the
    // default; equal here means bitwise the same run.)
    const double l1 = r1.rows[k].lipschitz_max, l2 = r2.rows[k].lipschitz_max;
    EXPECT_TRUE(l1 == l2 || (std::isnan(l1) && std::isnan(l2))) << k;
    EXPECT_EQ(r1.rows[k].score_error, r2.rows[k].score_error) << k;
  }
  EXPECT_EQ(r1.su_coupling, r2.su_coupling);
  EXPECT_TRUE(std::isfinite(r1.su_coupling));
}

TEST(LatentConditions, OneRowIsSharedAndNRowsGiveItemIItsRow) {
  const std::string dir = testing_cli::fresh_dir("latent_condition_rows");
  auto model = open_model(cond_latent_net(dir));
  const std::string path = images(dir).first;
  auto data = open_model_dataset(path, model);
  // Items 0..2 (batch 0) use −1, items 3..5 (batch 1) use 2: each batch's statistics equal those
  // of the run where every item uses that batch's value.
  const ItemConditions rows =
      item_conditions(*model, 6, Arrays{{"pooled", torch::tensor({-1.0f, -1.0f, -1.0f, 2.0f, 2.0f, 2.0f})}});
  EXPECT_FALSE(rows.unconditional());
  const GammaRun per_item = gamma_run(model, *data, rows);
  const GammaRun low = gamma_run(model, *data, item_conditions(*model, 6, Arrays{{"pooled", torch::tensor({-1.0f})}}));
  const GammaRun high = gamma_run(model, *data, item_conditions(*model, 6, Arrays{{"pooled", torch::tensor({2.0f})}}));
  ASSERT_EQ(per_item.batches.size(), 6u);  // 3 timesteps × 2 batches, in (t, b) order
  for (size_t k = 0; k < 6; k += 2) {
    EXPECT_EQ(per_item.batches[k].sum, low.batches[k].sum);
    EXPECT_EQ(per_item.batches[k + 1].sum, high.batches[k + 1].sum);
    EXPECT_NE(per_item.batches[k].sum, high.batches[k].sum);
  }
  // Drawn items (score matching, Lipschitz points) get their own rows.
  const torch::Tensor six = torch::arange(6, torch::kFloat32) / 4;
  const ItemConditions each = item_conditions(*model, 6, Arrays{{"pooled", six}});
  EXPECT_TRUE(torch::equal(each.of(torch::tensor({5, 0, 2}), torch::kCPU).conds[0],
                           six.index_select(0, torch::tensor({5, 0, 2}))));
  EXPECT_TRUE(torch::equal(each.range(2, 3, torch::kCPU).conds[0], six.narrow(0, 2, 3)));

  // Any other row count is refused before any network call, naming the array and the counts.
  const std::string wrong = error_of([&] { item_conditions(*model, 6, Arrays{{"pooled", torch::zeros({4})}}); });
  for (const char* needle : {"cond array 'pooled'", "has 4 rows", "1 (shared by every item) or 6"})
    EXPECT_NE(wrong.find(needle), std::string::npos) << wrong;
  EXPECT_NE(error_of([&] {
              item_conditions(*model, 6, {}, Arrays{{"pooled", torch::zeros({5})}});
            }).find("uncond array 'pooled' has 5 rows"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              item_conditions(*model, 6, Arrays{{"context", torch::zeros({1})}});
            }).find("'context'"),
            std::string::npos);
  // Arrays for a model without conditions are refused; without them nothing changes.
  auto plain = open_model("builtin:gaussian:shape=2");
  EXPECT_TRUE(item_conditions(*plain, 6).empty());
  EXPECT_NE(error_of([&] {
              item_conditions(*plain, 6, Arrays{{"pooled", torch::zeros({1})}});
            }).find("declares no conditioning inputs"),
            std::string::npos);
}

TEST(LatentConditionsCli, ScoreMatchingNotesTheDefaultAndRefusesAWrongRowCount) {
  const std::string dir = testing_cli::fresh_dir("latent_conditions_cli");
  const std::string model = cond_latent_net(dir);
  const std::string path = images(dir).first;
  const std::string common =
      "eval score-matching --model " + model + " --data " + path + " --sigmas 0.5,2 --num-images 4 --batch 3";
  const auto ok = testing_cli::run(common);
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.err.find("note: model " + model + " is conditional; the data are denoised with its unconditional input"),
            std::string::npos)
      << ok.err;
  io::write_npz(dir + "/bad.npz", {{"pooled", io::from_tensor(torch::zeros({4}))}});
  const auto bad = testing_cli::run(common + " --cond " + dir + "/bad.npz");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("error: --cond array 'pooled' has 4 rows"), std::string::npos) << bad.err;
}

TEST(EmpiricalEncoder, EncodesTheImagesAsTheLatentModelReadsThem) {
  const std::string dir = testing_cli::fresh_dir("empirical_encoder");
  const std::string model_path = cond_latent_net(dir);
  const auto im = images(dir);
  const std::string path = im.first;
  const torch::Tensor latents = im.second;
  auto encoded = make_empirical("builtin:empirical:data=" + path + ",limit=5,encoder=" + model_path);
  const ModelMetadata& m = encoded->metadata();
  EXPECT_EQ(m.shape, (std::vector<int64_t>{4, 2, 2}));
  EXPECT_EQ(m.schedule.type(), ScheduleType::VpDiscrete);  // the latent model's
  EXPECT_TRUE(
      torch::allclose(encoded->data(), latents.narrow(0, 0, 5).reshape({5, 16}).to(torch::kFloat64), 1e-6, 1e-6));
  // Its denoiser is the empirical denoiser of the first five images put through encode() by hand.
  const torch::Tensor img = io::to_tensor(io::read_npy(path)).narrow(0, 0, 5);
  EmpiricalModel by_hand("hand", "hand", open_model(model_path)->call_method("encode", img), m);
  torch::manual_seed(2);
  const torch::Tensor x = torch::randn({3, 4, 2, 2}, torch::kFloat64);
  for (double sigma : {0.05, 0.5, 5.0})
    EXPECT_TRUE(torch::allclose(encoded->denoise(x, {sigma}, {}), by_hand.denoise(x, {sigma}, {}), 1e-12, 1e-12));
  // The image reading comes from the archive: lo/hi/pad are refused with encoder=.
  EXPECT_NE(error_of([&] {
              make_empirical("builtin:empirical:data=" + path + ",pad=2,encoder=" + model_path);
            }).find("pad is not used with encoder="),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              make_empirical("builtin:empirical:data=" + path + ",encoder=builtin:gaussian");
            }).find("has no metadata 'encoder'"),
            std::string::npos);
}

namespace {

// D = 0.5·x + mean(context) + 2·pooled, conditions context [3, 2] and pooled [2], uncond zeros.
std::shared_ptr<Model> vector_net(const std::string& dir) {
  torch::jit::Module m("CondNet");
  m.define("def forward(self, x, t, context, pooled):\n    return 0.5 * x + context.mean(1) + 2.0 * pooled\n");
  const std::string path = dir + "/cond_net.pt";
  m.save(path, {{"scoreflow.json", R"({"prediction":"x0","schedule":{"type":"edm"},"time_input":"sigma","shape":[2],)"
                                   R"("data_range":[-10,10],"conditions":[{"name":"context","shape":[3,2]},)"
                                   R"({"name":"pooled","shape":[2]}],"uncond":"zeros"})"}});
  return open_model(path);
}

}  // namespace

TEST(ConditioningResume, AnInterruptedChunkedRunResumesByteForByte) {
  const std::string dir = testing_cli::fresh_dir("conditioning_resume");
  auto model = vector_net(dir);
  auto sampler = make_sampler("heun");
  SampleJob job;
  job.sigmas = {20.0, 5.0, 1.0, 0.2, 0.0};
  for (uint64_t s = 100; s < 107; ++s) job.seeds.push_back(s);
  job.batch = 2;
  job.guidance = 2.5;
  torch::manual_seed(4);
  job.cond = check_condition_tables(model->metadata().conditions,
                                    {{"context", torch::randn({3, 3, 2})}, {"pooled", torch::randn({3, 2})}}, "cond");
  job.uncond = check_condition_tables(
      model->metadata().conditions, {{"context", torch::randn({1, 3, 2})}, {"pooled", torch::randn({1, 2})}}, "uncond");
  job.cond_rows = condition_rows(7, 3, {2, 0, 1, 1, 2, 0, 2});
  io::Settings settings = jobs::model_settings(*model);
  const io::Settings conditioning = jobs::conditioning_settings(job);
  ASSERT_EQ(conditioning.size(), 1u);
  settings.insert(settings.end(), conditioning.begin(), conditioning.end());

  // One uninterrupted run.
  const torch::Tensor whole = jobs::run_chunked(*sampler, model, job).result.samples;
  // A run killed after its first two chunks (seeds 0..3) left them in its store ...
  const std::string parts = dir + "/out.npz.parts";
  testing_jobs::run_killed_after(*sampler, model, job, parts, settings, 4, "npz");
  // ... and the same command resumes them: equal to the uninterrupted run byte for byte.
  io::ChunkStore store(parts, settings, false, "npz");
  jobs::ChunkOptions o;
  o.store = &store;
  const jobs::ChunkedResult resumed = jobs::run_chunked(*sampler, model, job, o);
  EXPECT_EQ(resumed.resumed, 4);
  ASSERT_EQ(resumed.result.samples.sizes(), whole.sizes());
  EXPECT_TRUE(torch::equal(resumed.result.samples, whole));
  // The rows decide the samples: other rows give other samples.
  SampleJob shuffled = job;
  shuffled.cond_rows = condition_rows(7, 3, {});
  EXPECT_FALSE(torch::equal(jobs::run_chunked(*sampler, model, shuffled).result.samples, whole));

  // Other condition values (another cond file), or other unconditional ones, are refused, naming the setting.
  for (const char* which : {"cond", "uncond"}) {
    SampleJob other = job;
    ConditionTables& t = std::string(which) == "cond" ? other.cond : other.uncond;
    t.values[1] = t.values[1] + 1e-3;
    io::Settings changed = jobs::model_settings(*model);
    const io::Settings c = jobs::conditioning_settings(other);
    changed.insert(changed.end(), c.begin(), c.end());
    const std::string refused = error_of([&] { io::ChunkStore(parts, changed, false, "npz"); });
    EXPECT_NE(refused.find("conditioning"), std::string::npos) << which << ": " << refused;
  }
  // A job without conditions records none (older records still match).
  EXPECT_TRUE(jobs::conditioning_settings(SampleJob{}).empty());
}
