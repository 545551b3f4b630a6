// Schedule searches on conditional models (docs/design.md §3): GITS and LD3 with conditions and
// guidance equal the same searches on an unconditional model that has those conditions and that
// guidance baked in (a wrapper written here), each warm-up sample gets its own row, the conditions
// are part of the resume manifest, and bad tables are refused before any network call.
#include <gtest/gtest.h>
#include <torch/script.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "scoreflow/conditioning.h"
#include "scoreflow/error.h"
#include "scoreflow/jobs.h"
#include "scoreflow/ld3.h"
#include "scoreflow/npy.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "scoreflow/schedule_search.h"
#include "scoreflow/sigmas.h"
#include "support/cli_run.h"
#include "support/io_test_util.h"

using namespace scoreflow;

namespace {

// EDM schedule, x0 prediction, t = σ: D(x, σ) = tanh(x/(1 + σ) + mean_k context[k]) · pooled + 0.2 x,
// nonlinear in x and in both conditions "context" [3, 2] and "pooled" [2]; shape [2]. Returns its path.
std::string conditional_net_path() {
  torch::jit::Module m("SearchCondNet");
  m.define(
      "def forward(self, x, t, context, pooled):\n"
      "    return torch.tanh(x / (1.0 + t.view(-1, 1)) + context.mean(1)) * pooled + 0.2 * x\n");
  const std::string path = ::testing::TempDir() + "/search_cond_net_" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".pt";
  m.save(path,
         {{"scoreflow.json",
           R"({"prediction":"x0","schedule":{"type":"edm"},"time_input":"sigma","shape":[2],)"
           R"("data_range":[-10,10],"conditions":[{"name":"context","shape":[3,2]},{"name":"pooled","shape":[2]}]})"}});
  return path;
}

std::shared_ptr<Model> conditional_net() { return open_model(conditional_net_path()); }

/// Tables of the fixture's conditions: row r has context value ctx[r] and pooled row pooled[r].
ConditionTables tables(const Model& model, const std::vector<double>& ctx,
                       const std::vector<std::vector<float>>& pooled, const char* field = "cond") {
  std::vector<torch::Tensor> c, p;
  for (double v : ctx) c.push_back(torch::full({1, 3, 2}, v));
  for (const auto& row : pooled) p.push_back(torch::tensor(row).view({1, 2}));
  return check_condition_tables(model.metadata().conditions, {{"context", torch::cat(c)}, {"pooled", torch::cat(p)}},
                                field);
}

/// The conditioning of `n` samples: `cond` with `rows` (default: all row 0), the unconditional
/// tables and the guidance weight.
SampleJob job_for(const ConditionTables& cond, int64_t n, const ConditionTables& uncond, double guidance,
                  std::vector<int64_t> rows = {}) {
  SampleJob job;
  job.cond = cond;
  job.cond_rows = rows.empty() ? std::vector<int64_t>(static_cast<size_t>(n), 0) : rows;
  job.uncond = uncond;
  job.guidance = guidance;
  return job;
}

/// An unconditional model: `inner` with one Conditioning (its 1-row tables and guidance) baked in.
/// Counts the network calls of `inner` it makes.
class Baked : public Model {
 public:
  Baked(std::shared_ptr<const Model> inner, Conditioning c) : inner_(std::move(inner)), c_(std::move(c)) {
    meta_ = inner_->metadata();
    meta_.conditions.clear();
    meta_.uncond = UncondSource::None;
  }
  std::string name() const override { return "baked"; }
  std::string summary() const override { return "baked"; }
  const ModelMetadata& metadata() const override { return meta_; }
  torch::Tensor denoise(const torch::Tensor& x, const std::vector<double>& sigma, const torch::Tensor&) const override {
    return Denoiser(inner_, c_)(x, sigma);
  }

 private:
  std::shared_ptr<const Model> inner_;
  Conditioning c_;
  ModelMetadata meta_;
};

std::shared_ptr<Model> baked(std::shared_ptr<const Model> inner, const SampleJob& job, int64_t row) {
  SampleJob one = job;
  one.cond_rows = {row};
  return std::make_shared<Baked>(std::move(inner), batch_conditioning(one, 0, 1, torch::kCPU));
}

/// The conditional model as it is, counting its network calls.
class Counting : public Model {
 public:
  explicit Counting(std::shared_ptr<const Model> inner) : inner_(std::move(inner)) {}
  std::string name() const override { return inner_->name(); }
  std::string summary() const override { return inner_->summary(); }
  const ModelMetadata& metadata() const override { return inner_->metadata(); }
  torch::Tensor denoise(const torch::Tensor& x, const std::vector<double>& s, const torch::Tensor& l) const override {
    return ++calls, inner_->denoise(x, s, l);
  }
  torch::Tensor denoise_conditioned(const torch::Tensor& x, const std::vector<double>& s, const torch::Tensor& l,
                                    const std::vector<torch::Tensor>& c) const override {
    return ++calls, inner_->denoise_conditioned(x, s, l, c);
  }
  mutable int calls = 0;

 private:
  std::shared_ptr<const Model> inner_;
};

std::vector<double> entries(const StepCostMatrix& cost, int64_t nodes) {
  std::vector<double> out;
  for (int64_t i = 1; i < nodes; ++i)
    for (int64_t j = i + 1; j <= nodes; ++j) out.push_back(cost(i, j));
  return out;
}

double largest_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (size_t k = 0; k < a.size(); ++k) d = std::max(d, std::abs(a[k] - b[k]));
  return d;
}

double largest(const std::vector<double>& a) {
  double d = 0;
  for (double v : a) d = std::max(d, std::abs(v));
  return d;
}

using testing_io::expect_error;  // tests/support/io_test_util.h

GitsOptions gits_options(const Model& model) {
  GitsOptions o;
  o.candidates = make_sigmas("karras", 8, model.metadata().schedule, KeyValueArgs(""));
  o.steps = 3;
  o.warmup = 6;
  o.batch = 4;  // two batches, the second partial
  o.dtype = torch::kFloat64;
  return o;
}

Ld3Options ld3_options(const Model& model) {
  Ld3Options o;
  o.teacher_sigmas = make_sigmas("karras", 12, model.metadata().schedule, KeyValueArgs(""));
  o.steps = 3;
  o.train_samples = 8;
  o.valid_samples = 4;
  o.iterations = 8;
  o.train_batch = 4;
  o.validate_every = 2;
  o.teacher_batch = 8;
  o.lr = 0.3;
  o.dtype = torch::kFloat64;
  return o;
}

}  // namespace

TEST(SearchConditioning, GitsOnAConditionalModelIsTheSearchOnItsBakedInModel) {
  auto model = conditional_net();
  const ConditionTables cond = tables(*model, {0.4, -0.7}, {{1.5f, -0.8f}, {-1.0f, 2.0f}});
  const ConditionTables uncond = tables(*model, {-0.2}, {{0.5f, 0.5f}}, "uncond");
  auto euler = make_sampler("euler"), heun = make_sampler("heun");
  GitsOptions o = gits_options(*model);
  o.conditioning = job_for(cond, o.warmup, uncond, 2.5);
  const GitsOptions plain = gits_options(*model);
  const int64_t nodes = static_cast<int64_t>(o.candidates.size());
  const auto conditional = entries(gits_cost_matrix(model, *euler, *heun, o), nodes);
  const auto want = entries(gits_cost_matrix(baked(model, o.conditioning, 0), *euler, *heun, plain), nodes);
  ASSERT_GT(largest(want), 1e-3);
  EXPECT_LE(largest_difference(conditional, want), 1e-12 * largest(want));
  EXPECT_EQ(search_gits(model, *euler, *heun, o).indices,
            search_gits(baked(model, o.conditioning, 0), *euler, *heun, plain).indices);
  // Another caption (row 1 for every sample) gives other costs.
  const auto other = entries(gits_cost_matrix(baked(model, o.conditioning, 1), *euler, *heun, plain), nodes);
  EXPECT_GT(largest_difference(other, want), 0.01 * largest(want));
}

TEST(SearchConditioning, Ld3OnAConditionalModelIsTheSearchOnItsBakedInModel) {
  auto model = conditional_net();
  const ConditionTables cond = tables(*model, {0.4, -0.7}, {{1.5f, -0.8f}, {-1.0f, 2.0f}});
  const ConditionTables uncond = tables(*model, {-0.2}, {{0.5f, 0.5f}}, "uncond");
  const Ld3Student student("euler");
  auto heun = make_sampler("heun");
  Ld3Options o = ld3_options(*model);
  o.conditioning = job_for(cond, o.train_samples + o.valid_samples, uncond, 2.5);
  const Ld3Options plain = ld3_options(*model);
  const Ld3Result r = search_ld3(model, student, *heun, o);
  const Ld3Result want = search_ld3(baked(model, o.conditioning, 0), student, *heun, plain);
  EXPECT_GT(r.best_iteration, 0);  // training moved the grid: the student's gradient saw the conditions
  EXPECT_NEAR(r.valid_loss, want.valid_loss, 1e-12 * want.valid_loss);
  EXPECT_NEAR(r.initial_valid_loss, want.initial_valid_loss, 1e-12 * want.initial_valid_loss);
  ASSERT_EQ(r.sigmas.size(), want.sigmas.size());
  for (size_t i = 0; i < r.sigmas.size(); ++i) EXPECT_NEAR(r.sigmas[i], want.sigmas[i], 1e-12 * want.sigmas[0]);
  Ld3Options none = plain;
  none.iterations = 0;
  const Ld3Result other = search_ld3(baked(model, o.conditioning, 1), student, *heun, none);
  EXPECT_GT(std::abs(other.initial_valid_loss - want.initial_valid_loss), 0.01 * want.initial_valid_loss);
}

TEST(SearchConditioning, EachSampleUsesItsOwnRow) {
  auto model = conditional_net();
  const ConditionTables cond = tables(*model, {0.4, -0.7}, {{1.5f, -0.8f}, {-1.0f, 2.0f}});
  auto euler = make_sampler("euler"), heun = make_sampler("heun");
  // GITS: samples 0, 1 on row 0 and 2, 3 on row 1 in one batch cost the mean of the two halves.
  GitsOptions o = gits_options(*model);
  o.warmup = 4;
  o.conditioning = job_for(cond, 4, {}, 1.0, {0, 0, 1, 1});
  GitsOptions first = o, second = o;
  first.warmup = second.warmup = 2;
  first.conditioning.cond_rows = {0, 0};
  second.seed = 2;
  second.conditioning.cond_rows = {1, 1};
  const int64_t nodes = static_cast<int64_t>(o.candidates.size());
  const auto mixed = entries(gits_cost_matrix(model, *euler, *heun, o), nodes);
  const auto a = entries(gits_cost_matrix(model, *euler, *heun, first), nodes);
  const auto b = entries(gits_cost_matrix(model, *euler, *heun, second), nodes);
  std::vector<double> mean;
  for (size_t k = 0; k < a.size(); ++k) mean.push_back((a[k] + b[k]) / 2);
  EXPECT_GT(largest_difference(a, b), 0.01 * largest(a));
  EXPECT_LE(largest_difference(mixed, mean), 1e-12 * largest(mean));
  // LD3's validation samples continue the sequence: with rows 0, 0 | 1, 1 (two training, two
  // validation samples) the initial validation loss is that of row 1 alone.
  const Ld3Student student("euler");
  Ld3Options l = ld3_options(*model);
  l.train_samples = l.valid_samples = 2;
  l.train_batch = 2;
  l.iterations = 0;
  l.conditioning = job_for(cond, 4, {}, 1.0, {0, 0, 1, 1});
  Ld3Options plain = l;
  plain.conditioning = SampleJob{};
  const double loss = search_ld3(model, student, *heun, l).initial_valid_loss;
  const double row1 = search_ld3(baked(model, l.conditioning, 1), student, *heun, plain).initial_valid_loss;
  const double row0 = search_ld3(baked(model, l.conditioning, 0), student, *heun, plain).initial_valid_loss;
  EXPECT_NEAR(loss, row1, 1e-12 * row1);
  EXPECT_GT(std::abs(row0 - row1), 0.01 * row1);
  // A random minibatch's Conditioning: the rows and labels of its samples, in its order.
  SampleJob job = job_for(tables(*model, {0.1, 0.2, 0.3}, {{1, 1}, {2, 2}, {3, 3}}), 4, {}, 1.0, {2, 0, 1, 1});
  job.labels = torch::tensor({7, 8, 9, 10}, torch::kLong);
  const Conditioning picked = samples_conditioning(job, {3, 0, 3}, torch::kCPU);
  EXPECT_TRUE(torch::equal(picked.labels, torch::tensor({10, 7, 10}, torch::kLong)));
  EXPECT_TRUE(torch::equal(picked.conds[1], torch::tensor({{2.0f, 2.0f}, {3.0f, 3.0f}, {2.0f, 2.0f}})));
  EXPECT_TRUE(torch::allclose(picked.conds[0].mean({1, 2}), torch::tensor({0.2f, 0.3f, 0.2f})));
  expect_error([&] { samples_conditioning(job, {4}, torch::kCPU); }, {"samples", "index 4"});
}

TEST(SearchConditioning, AResumeWithOtherConditionsIsRefusedNamingThem) {
  auto model = conditional_net();
  const ConditionTables cond = tables(*model, {0.4, -0.7}, {{1.5f, -0.8f}, {-1.0f, 2.0f}});
  const std::string dir = testing_cli::fresh_dir("search_cond_resume");
  auto euler = make_sampler("euler"), heun = make_sampler("heun");
  GitsOptions g = gits_options(*model);
  g.conditioning = job_for(cond, g.warmup, {}, 1.0);
  const auto refused = [&](const std::string& folder, const io::Settings& first, const io::Settings& second,
                           const std::string& field) {
    {
      io::ChunkStore store(folder, first, false, "--out");
      store.save("gits-batch-0", io::from_tensor(torch::zeros({4}, torch::kFloat64)));
    }
    expect_error([&] { io::ChunkStore store(folder, second, false, "--out"); }, {field});
  };
  GitsOptions other = g;  // the same shapes and rows, other values
  other.conditioning.cond = tables(*model, {0.4, -0.7}, {{1.5f, -0.8f}, {-1.0f, 2.5f}});
  refused(dir + "/a", jobs::gits_settings(*model, *euler, "", *heun, g),
          jobs::gits_settings(*model, *euler, "", *heun, other), "conditioning");
  other = g;
  other.conditioning.cond_rows[1] = 1;
  refused(dir + "/b", jobs::gits_settings(*model, *euler, "", *heun, g),
          jobs::gits_settings(*model, *euler, "", *heun, other), "cond rows");
  const Ld3Student student("euler");
  Ld3Options l = ld3_options(*model);
  l.conditioning = job_for(cond, 12, {}, 1.0);
  Ld3Options guided = l;
  guided.conditioning.guidance = 2;
  refused(dir + "/c", jobs::ld3_settings(*model, student, *heun, l), jobs::ld3_settings(*model, student, *heun, guided),
          "conditioning");
  // Class guidance without tables is recorded too.
  SampleJob classes;
  classes.guidance = 3;
  EXPECT_EQ(jobs::search_conditioning_settings(classes), (io::Settings{{"guidance", "3"}}));
  // An unconditional search's manifest is the one searches made before conditioning existed.
  auto gaussian = open_model("builtin:gaussian:shape=2");
  std::vector<std::string> keys;
  for (const auto& [key, value] : jobs::gits_settings(*gaussian, *euler, "", *heun, gits_options(*gaussian)))
    keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"model", "model metadata", "device", "method", "sampler", "teacher",
                                            "candidates", "teacher substeps", "warmup", "seed", "batch", "dtype",
                                            "metric", "student step"}));
  keys.clear();
  for (const auto& [key, value] : jobs::ld3_settings(*gaussian, student, *heun, ld3_options(*gaussian)))
    keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "model",         "model metadata", "device",         "method",         "sampler",
                      "steps",         "final",          "teacher",        "teacher sigmas", "train samples",
                      "valid samples", "seed",           "iterations",     "train batch",    "lr",
                      "ball",          "shift lr",       "validate every", "teacher batch",  "dtype"}));
}

TEST(SearchConditioning, BadConditionsAreRefusedBeforeAnyNetworkCall) {
  auto counting = std::make_shared<Counting>(conditional_net());
  auto euler = make_sampler("euler"), heun = make_sampler("heun");
  const Ld3Student student("euler");
  GitsOptions g = gits_options(*counting);
  Ld3Options l = ld3_options(*counting);
  // No conditions for a conditional model.
  expect_error([&] { search_gits(counting, *euler, *heun, g); }, {"context, pooled", "cond"});
  expect_error([&] { search_ld3(counting, student, *heun, l); }, {"context, pooled", "cond"});
  // A table whose row count is neither 1 nor the others' (built by hand: check_condition_tables
  // would refuse it as it reads the file).
  ConditionTables bad;
  bad.values = {torch::zeros({2, 3, 2}), torch::zeros({3, 2})};
  bad.rows = 3;
  g.conditioning = job_for(bad, g.warmup, {}, 1.0);
  expect_error([&] { search_gits(counting, *euler, *heun, g); }, {"cond", "'context'", "[2, 3, 2]"});
  l.conditioning = job_for(bad, 12, {}, 1.0);
  expect_error([&] { search_ld3(counting, student, *heun, l); }, {"cond", "'context'", "[2, 3, 2]"});
  // One row per sample: LD3 needs the validation samples' rows too.
  l.conditioning = job_for(tables(*counting, {0.4}, {{1, 1}}), l.train_samples, {}, 1.0);
  expect_error([&] { search_ld3(counting, student, *heun, l); }, {"cond_rows", "8 entries for 12 samples"});
  EXPECT_EQ(counting->calls, 0);
}

#ifdef SCOREFLOW_HAS_CLI
// The command line: --cond, --uncond and --guidance reach the search, which writes what the
// in-process search with `sample`'s rows finds.
TEST(SearchScheduleCli, GitsWithConditionsAndGuidanceSearchesWhatTheLibrarySearches) {
  const std::string dir = testing_cli::fresh_dir("search_cond_cli");
  const std::string net = conditional_net_path();
  auto model = open_model(net);
  GitsOptions o;
  o.candidates = make_sigmas("karras", 6, model->metadata().schedule, KeyValueArgs(""));
  o.steps = 3;
  o.warmup = o.batch = 4;
  o.seed = 5;
  SampleJob& job = o.conditioning;
  job.cond = tables(*model, {0.4, -0.7, 0.1}, {{1.5f, -0.8f}, {-1.0f, 2.0f}, {0.3f, 0.9f}});
  job.uncond = tables(*model, {-0.2}, {{0.5f, 0.5f}}, "uncond");
  job.cond_rows = {0, 1, 2, 0};  // sample k uses row k mod 3, as `sample --seeds 5-8` gives them
  job.guidance = 2;
  io::write_npz(dir + "/cond.npz",
                {{"context", io::from_tensor(job.cond.values[0])}, {"pooled", io::from_tensor(job.cond.values[1])}});
  io::write_npz(dir + "/uncond.npz", {{"context", io::from_tensor(job.uncond.values[0])},
                                      {"pooled", io::from_tensor(job.uncond.values[1])}});
  auto run = [&](const std::vector<std::string>& extra, const std::string& name) {
    std::vector<std::string> args{"search-schedule",
                                  "--method",
                                  "gits",
                                  "--model",
                                  net,
                                  "--sampler",
                                  "euler",
                                  "--nfe",
                                  "3",
                                  "--teacher",
                                  "euler:6",
                                  "--warmup",
                                  "4",
                                  "--batch",
                                  "4",
                                  "--seed",
                                  "5",
                                  "--uncond",
                                  dir + "/uncond.npz",
                                  "--out",
                                  dir + "/" + name + ".json",
                                  "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return testing_cli::run_cli(args, dir + "/" + name);
  };
  const testing_cli::Outcome r = run({"--cond", dir + "/cond.npz", "--guidance", "2"}, "guided");
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json doc = nlohmann::json::parse(r.out);
  auto euler = make_sampler("euler");
  const GitsResult want = search_gits(model, *euler, *euler, o);
  EXPECT_EQ(doc.at("sigmas").get<std::vector<double>>(), want.sigmas);
  EXPECT_NEAR(doc.at("cost").get<double>(), want.cost, 1e-6 * want.cost);  // float32, another thread count
  o.conditioning.cond_rows = {2, 0, 1, 2};  // rows by seed (5, 6, 7, 8 mod 3) would be another search
  EXPECT_GT(std::abs(search_gits(model, *euler, *euler, o).cost - want.cost), 1e-3 * want.cost);
}
#endif
