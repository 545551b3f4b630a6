// The job layer in process (scoreflow/jobs.h): shards merged equal one run byte for byte, a
// resumed run reuses its finished chunks and equals an uninterrupted one, the device splitter on
// two CPU "devices" equals one, and a run whose fingerprint differs is refused.
#include "scoreflow/jobs.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "scoreflow/data.h"
#include "scoreflow/discrete_chain.h"
#include "scoreflow/error.h"
#include "scoreflow/features.h"
#include "scoreflow/fingerprint.h"
#include "scoreflow/metrics.h"
#include "scoreflow/model.h"
#include "scoreflow/model_data.h"
#include "scoreflow/registry.h"
#include "scoreflow/sigmas.h"
#include "support/jobs_test_util.h"
#include "tests/support/error_text.h"

namespace fs = std::filesystem;
using namespace scoreflow;

namespace {

/// A folder of this test's own (ctest runs tests as parallel processes).
std::string scratch() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string dir = ::testing::TempDir() + "/scoreflow_jobs/" + info->test_suite_name() + "." + info->name();
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

using scoreflow::testing_support::error_of;

// A stochastic sampler, so that every noise draw (not only the initial noise) must follow the seed.
const char* const kGmm = "builtin:gmm:shape=1x6x6,k=3";

SampleJob gmm_job(const Model& model, int64_t seeds, int batch) {
  SampleJob job;
  job.sigmas = make_sigmas("karras", 6, model.metadata().schedule, KeyValueArgs(""));
  for (int64_t s = 0; s < seeds; ++s) job.seeds.push_back(static_cast<uint64_t>(100 + s));
  job.batch = batch;
  return job;
}

/// What `sample --npz` writes for seeds [begin, end), with a shard record when sharded.
void write_samples(const std::string& path, const torch::Tensor& samples, const SampleJob& job, int64_t begin,
                   int64_t end, const jobs::Shard& shard, const io::Settings& settings) {
  std::vector<int64_t> seeds(job.seeds.begin() + begin, job.seeds.begin() + end);
  std::vector<std::pair<std::string, io::NpyArray>> arrays = {
      {"samples", io::from_tensor(samples)}, {"seeds", io::from_tensor(torch::tensor(seeds, torch::kLong))}};
  if (shard.sharded())
    arrays.emplace_back(jobs::kShardKey,
                        jobs::record_array(jobs::shard_record("samples", shard, settings, begin, end,
                                                              static_cast<int64_t>(job.seeds.size()))));
  io::write_npz(path, arrays);
}

}  // namespace

TEST(Jobs, ShardPlanFromFlagsAndLaunchers) {
  jobs::Shard s = jobs::parse_shard("1/4");
  EXPECT_EQ(s.index, 1);
  EXPECT_EQ(s.count, 4);
  EXPECT_EQ(s.label(), "shard-1-of-4");
  EXPECT_EQ(jobs::shard_path("out/a.npz", s), "out/a.shard-1-of-4.npz");
  EXPECT_EQ(jobs::shard_path("gamma.json", s, ".npz"), "gamma.shard-1-of-4.npz");
  EXPECT_EQ(jobs::shard_path("dir.d/png", s), "dir.d/png.shard-1-of-4");
  // Errors name the field, which a front end spells as its own flag.
  try {
    jobs::parse_shard("2/2");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "shard '2/2': shard index 2 must be < the number of shards 2 (0-based)");
    EXPECT_EQ(e.field(), "shard");
  }
  EXPECT_NE(error_of([] { jobs::parse_shard("0/0"); }).find("the number of shards must be >= 1"), std::string::npos);
  EXPECT_NE(error_of([] { jobs::parse_shard("-1/2"); }).find("is malformed"), std::string::npos);
  EXPECT_NE(error_of([] { jobs::parse_shard("1of2"); }).find("is malformed"), std::string::npos);

  // Launchers, in order; an explicit choice wins; a launcher with one process gives way.
  auto with_env = [](const std::vector<std::pair<const char*, const char*>>& env, const std::string& flag) {
    for (const auto& [k, v] : env) setenv(k, v, 1);
    jobs::Shard shard;
    std::string error;
    try {
      shard = jobs::resolve_shard(flag);
    } catch (const Error& e) {
      error = e.what();
    }
    for (const auto& [k, v] : env) unsetenv(k);
    return std::make_pair(shard, error);
  };
  auto [torchrun, e1] = with_env({{"RANK", "1"}, {"WORLD_SIZE", "2"}}, "");
  EXPECT_EQ(torchrun.source, "RANK/WORLD_SIZE");
  EXPECT_EQ(torchrun.index, 1);
  EXPECT_EQ(with_env({{"RANK", "1"}, {"WORLD_SIZE", "2"}}, "0/1").first.count, 1);
  EXPECT_EQ(with_env({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "4"}}, "").first.count, 4);
  auto [srun, e2] = with_env({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "3"}}, "");
  EXPECT_EQ(srun.source, "SLURM_PROCID/SLURM_NTASKS");
  EXPECT_EQ(srun.index, 2);
  auto [array, e3] =
      with_env({{"SLURM_ARRAY_TASK_ID", "7"}, {"SLURM_ARRAY_TASK_MIN", "5"}, {"SLURM_ARRAY_TASK_COUNT", "3"}}, "");
  EXPECT_EQ(array.index, 2);
  EXPECT_EQ(array.count, 3);
  EXPECT_NE(with_env({{"RANK", "x"}, {"WORLD_SIZE", "2"}}, "").second.find("RANK/WORLD_SIZE 'x/2' is malformed"),
            std::string::npos);
  EXPECT_NE(with_env({{"RANK", "3"}, {"WORLD_SIZE", "2"}}, "").second.find("RANK/WORLD_SIZE '3/2'"), std::string::npos);
  EXPECT_EQ(jobs::resolve_shard("").count, 1);

  // Whole blocks, contiguous, tiling the items; empty slices when there are fewer blocks.
  int64_t covered = 0;
  for (int64_t i = 0; i < 5; ++i) {
    const auto [b, e] = jobs::shard_range(11, 3, i, 5);
    EXPECT_EQ(b, covered);
    EXPECT_TRUE(b % 3 == 0 || b == 11);
    covered = e;
  }
  EXPECT_EQ(covered, 11);
  EXPECT_EQ(jobs::shard_range(11, 3, 0, 2), (std::pair<int64_t, int64_t>(0, 6)));
  EXPECT_EQ(jobs::shard_range(11, 3, 1, 2), (std::pair<int64_t, int64_t>(6, 11)));
  EXPECT_NE(error_of([] { jobs::shard_range(11, 0, 0, 2); }).find("batch must be >= 1, got 0"), std::string::npos);
}

TEST(Jobs, ShardsMergeToTheUnshardedFileByteForByte) {
  const std::string dir = scratch();
  auto model = open_model(kGmm);
  auto sampler = make_sampler("ddim", "eta=1");
  const SampleJob job = gmm_job(*model, 11, 3);
  const io::Settings settings = jobs::model_settings(*model);
  const torch::Tensor full = jobs::run_chunked(*sampler, model, job).result.samples;
  write_samples(dir + "/full.npz", full, job, 0, 11, jobs::Shard{}, settings);
  // Five shards of 4 batches: two are empty, and still write files that merge.
  std::vector<std::string> paths;
  for (int64_t i = 4; i >= 0; --i) {  // any order
    jobs::Shard shard;
    shard.index = i;
    shard.count = 5;
    const auto [begin, end] = jobs::shard_range(11, job.batch, shard);
    torch::Tensor part = torch::empty({0, 1, 6, 6});
    if (end > begin) {
      SampleJob mine = job;
      mine.seeds.assign(job.seeds.begin() + begin, job.seeds.begin() + end);
      part = jobs::run_chunked(*sampler, model, mine).result.samples;
    }
    paths.push_back(jobs::shard_path(dir + "/part.npz", shard));
    write_samples(paths.back(), part, job, begin, end, shard, settings);
  }
  const jobs::ShardSet set = jobs::read_shard_set(paths);
  EXPECT_EQ(set.kind(), "samples");
  EXPECT_EQ(set.paths.front(), dir + "/part.shard-0-of-5.npz");
  EXPECT_EQ(jobs::merge_shards(set, dir + "/merged.npz")["num_samples"], 11);
  EXPECT_EQ(slurp(dir + "/merged.npz"), slurp(dir + "/full.npz")) << "merged shards differ from the unsharded run";

  // Incomplete, repeated, foreign and mismatched shard sets are refused, naming the file.
  std::vector<std::string> missing(paths.begin(), paths.end() - 1);
  EXPECT_NE(error_of([&] { jobs::read_shard_set(missing); }).find("shard 0 of 5 missing"), std::string::npos);
  std::vector<std::string> twice = paths;
  twice.push_back(paths[1]);
  EXPECT_NE(error_of([&] { jobs::read_shard_set(twice); }).find("is given twice"), std::string::npos);
  EXPECT_NE(error_of([&] { jobs::read_shard_set({dir + "/full.npz"}); }).find("is not a shard file"),
            std::string::npos);
  jobs::Shard other;
  other.index = 2;
  other.count = 5;
  io::Settings other_model = jobs::model_settings(*open_model("builtin:gmm:shape=1x6x6,k=4"));
  write_samples(dir + "/other.npz", full.narrow(0, 6, 3), job, 6, 9, other, other_model);
  std::vector<std::string> mixed = paths;
  mixed[2] = dir + "/other.npz";  // paths run from shard 4 down: [2] is shard 2
  const std::string refused = error_of([&] { jobs::read_shard_set(mixed); });
  EXPECT_NE(refused.find("comes from another run"), std::string::npos) << refused;
  EXPECT_NE(refused.find("model is 'fnv1a64:"), std::string::npos) << refused;
}

TEST(Jobs, ResumeReusesFinishedChunksAndEqualsAnUninterruptedRun) {
  const std::string dir = scratch();
  auto model = open_model(kGmm);
  auto sampler = make_sampler("ddim", "eta=1");
  const SampleJob job = gmm_job(*model, 10, 2);
  const io::Settings settings = jobs::model_settings(*model);
  const torch::Tensor full = jobs::run_chunked(*sampler, model, job).result.samples;

  // An interrupted run: the first two chunks of 2 landed before the kill.
  const std::string parts = jobs::chunk_folder(dir + "/out.npz");
  EXPECT_EQ(parts, dir + "/out.npz.parts");
  EXPECT_EQ(jobs::chunk_folder(dir + "/png/"), dir + "/png.parts");
  testing_jobs::run_killed_after(*sampler, model, job, parts, settings, 4);
  // Mark one finished chunk so that reusing it shows (an honest store holds the same values).
  const std::string marked = parts + "/samples-000000002-000000004.npy";
  ASSERT_TRUE(fs::exists(marked));
  const io::NpyArray kept = io::read_npy(marked);
  io::write_npy(marked, io::from_tensor(torch::full({2, 1, 6, 6}, 7.0f)));

  io::ChunkStore store(parts, settings, false, "the output");
  int64_t sampled_chunks = 0;
  std::vector<int64_t> chunk_begins;
  jobs::ChunkOptions o;
  o.store = &store;
  o.on_step = [&](int i, int, double) { sampled_chunks += i == 0; };
  o.on_chunk = [&](int64_t begin, const torch::Tensor&) { chunk_begins.push_back(begin); };
  jobs::ChunkedResult resumed = jobs::run_chunked(*sampler, model, job, o);
  EXPECT_EQ(resumed.resumed, 4);
  EXPECT_EQ(store.loaded(), 2);
  EXPECT_EQ(sampled_chunks, 3) << "finished chunks were sampled again";
  EXPECT_EQ(chunk_begins, (std::vector<int64_t>{0, 2, 4, 6, 8}));
  EXPECT_TRUE(torch::equal(resumed.result.samples.narrow(0, 2, 2), torch::full({2, 1, 6, 6}, 7.0f)));
  // With the honest chunk back, the resumed result is the uninterrupted one, bit for bit.
  io::write_npy(marked, kept);
  io::ChunkStore again(parts, settings, false, "the output");
  o.store = &again;
  sampled_chunks = 0;
  EXPECT_TRUE(torch::equal(jobs::run_chunked(*sampler, model, job, o).result.samples, full));
  EXPECT_EQ(sampled_chunks, 0);
  again.remove();
  EXPECT_FALSE(fs::exists(parts));
}

TEST(Jobs, DeviceSplitterOnTwoCpuWorkersEqualsOneDevice) {
  const std::string dir = scratch();
  auto sampler = make_sampler("ddim", "eta=1");
  // A TorchScript fixture, and a builtin: each opened once per "device".
  for (const std::string spec : {std::string(kGmm), std::string(SCOREFLOW_FIXTURE_DIR) + "/tiny_eps.pt"}) {
    SCOPED_TRACE(spec);
    std::vector<std::shared_ptr<const Model>> models{open_model(spec), open_model(spec)};
    const SampleJob job = gmm_job(*models[0], 9, 2);
    const torch::Tensor one = jobs::run_chunked(*sampler, models[0], job).result.samples;
    std::vector<int64_t> begins;
    int64_t last_done = 0;
    jobs::ChunkOptions o;
    o.on_chunk = [&](int64_t begin, const torch::Tensor&) { begins.push_back(begin); };
    o.on_batch = [&](int64_t done, int64_t total) {
      EXPECT_EQ(total, 9);
      last_done = std::max(last_done, done);
    };
    const jobs::ChunkedResult two = jobs::run_on_devices(*sampler, models, job, o);
    EXPECT_TRUE(torch::equal(two.result.samples, one));
    EXPECT_EQ(last_done, 9);
    std::sort(begins.begin(), begins.end());
    EXPECT_EQ(begins, (std::vector<int64_t>{0, 2, 4, 6, 8}));
  }
  // One chunk folder for any device count: a run killed on one device resumes on two.
  auto model = open_model(kGmm);
  std::vector<std::shared_ptr<const Model>> models{model, open_model(kGmm)};
  const SampleJob job = gmm_job(*model, 10, 2);
  const torch::Tensor one = jobs::run_chunked(*sampler, model, job).result.samples;
  const io::Settings settings = jobs::model_settings(*model);
  const std::string parts = jobs::chunk_folder(dir + "/out.npz");
  testing_jobs::run_killed_after(*sampler, model, job, parts, settings, 6);
  io::ChunkStore store(parts, settings, false, "the output");
  jobs::ChunkOptions o;
  o.store = &store;
  const jobs::ChunkedResult resumed = jobs::run_on_devices(*sampler, models, job, o);
  EXPECT_EQ(resumed.resumed, 6);
  EXPECT_TRUE(torch::equal(resumed.result.samples, one));
  EXPECT_EQ(store.chunks().size(), 5u);  // devices wrote the rest into the same folder

  // The splitter itself: slices as shards would cut them, idle workers for empty slices.
  std::vector<int> ran(4, 0);
  const auto slices = jobs::split_over_workers(5, 2, 4, [&](int64_t k, int64_t, int64_t) { ++ran[k]; });
  EXPECT_EQ(slices.size(), 4u);
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 1, 1}));
  EXPECT_NE(error_of([] {
              jobs::run_on_threads(2, [](int64_t k) {
                if (k == 1) fail("worker ", k, " failed");
              });
            }).find("worker 1 failed"),
            std::string::npos);
}

TEST(Jobs, GammaShardsAndDevicesMergeToTheUnshardedFileByteForByte) {
  const std::string dir = scratch();
  const std::string spec = "builtin:gaussian:shape=1x4x4,mean=0.2,std=0.3,schedule=vp_discrete";
  auto model = open_model(spec);
  std::vector<std::shared_ptr<const Model>> two{model, open_model(spec)};
  const std::string data_path = dir + "/data.npy";
  torch::manual_seed(5);
  io::write_npy(data_path, io::from_tensor((0.2 + 0.3 * torch::randn({230, 1, 4, 4})).clamp(-1, 1)));
  auto data = io::open_dataset(data_path, dataset_options(model->metadata()));
  const DiscreteChain chain = chain_of(*model);
  GammaEstimation job;
  job.timesteps = even_timesteps(chain.num_steps(), 6);
  job.num_images = 230;
  job.batch = 40;
  job.seed = 3;
  GammaMeta meta = gamma_meta_for(*model);
  meta.dataset = data->describe();
  meta.settings = {{"seed", "3"}};
  GammaTable full(meta, chain.num_steps());
  estimate_gamma(*model, *data, job, full);
  full.save(dir + "/full.json");
  // Two devices in one process.
  GammaTable split(meta, chain.num_steps());
  jobs::replay_gamma(jobs::estimate_gamma_batches(two, *data, job), split);
  split.save(dir + "/devices.json");
  EXPECT_EQ(slurp(dir + "/devices.json"), slurp(dir + "/full.json"));
  // Three shards (6 batches: 2 each), shard 1 on two devices, merged in any order.
  std::vector<std::string> paths;
  for (int64_t i : {2, 0, 1}) {
    jobs::Shard shard;
    shard.index = i;
    shard.count = 3;
    paths.push_back(jobs::shard_path(dir + "/gamma.json", shard, ".npz"));
    std::vector<std::shared_ptr<const Model>> models{model};
    if (i == 1) models = two;
    const auto range = jobs::estimate_gamma_shard(models, *data, job, meta, shard, paths.back());
    if (i == 2) EXPECT_EQ(range, (std::pair<int64_t, int64_t>(160, 230)));
  }
  jobs::merge_shards(jobs::read_shard_set(paths), dir + "/merged.json");
  EXPECT_EQ(slurp(dir + "/merged.json"), slurp(dir + "/full.json")) << "merged Gamma differs from the unsharded one";
  // A shard of another seed does not mix in.
  GammaMeta seven = meta;
  seven.settings = {{"seed", "7"}};
  jobs::Shard one;
  one.index = 1;
  one.count = 3;
  job.seed = 7;
  jobs::estimate_gamma_shard({model}, *data, job, seven, one, dir + "/seven.npz");
  paths[2] = dir + "/seven.npz";
  EXPECT_NE(error_of([&] { jobs::read_shard_set(paths); }).find("seed is '7' there but '3'"), std::string::npos);
}

/// The Γ fixture of the chunked tests: 230 images of a Gaussian, 6 timesteps, batches of 40.
struct GammaFixture {
  std::string spec = "builtin:gaussian:shape=1x4x4,mean=0.2,std=0.3,schedule=vp_discrete";
  std::shared_ptr<const Model> model;
  std::unique_ptr<io::Dataset> data;
  GammaEstimation job;
  GammaMeta meta;
  explicit GammaFixture(const std::string& dir) : model(open_model(spec)) {
    torch::manual_seed(5);
    io::write_npy(dir + "/data.npy", io::from_tensor((0.2 + 0.3 * torch::randn({230, 1, 4, 4})).clamp(-1, 1)));
    data = io::open_dataset(dir + "/data.npy", dataset_options(model->metadata()));
    job.timesteps = even_timesteps(chain_of(*model).num_steps(), 6);
    job.num_images = 230;
    job.batch = 40;
    job.seed = 3;
    meta = gamma_meta_for(*model);
    meta.dataset = data->describe();
    meta.settings = {{"num_images", "230"}, {"batch", "40"}, {"seed", "3"}, {"timesteps", "6"}};
  }
  /// estimate_gamma_job, "killed" (an exception out of the progress callback) after `kill_after`
  /// timesteps computed now when >= 0.
  jobs::GammaJobResult run(const std::vector<std::shared_ptr<const Model>>& models, const std::string& out,
                           int64_t kill_after = -1, const jobs::Shard& shard = {}) const {
    jobs::GammaJobOptions o;
    o.out = out;
    o.shard = shard;
    int64_t computed = 0;
    o.on_timestep = [&](int64_t, int64_t, double) {
      if (++computed == kill_after) throw std::runtime_error("killed");
    };
    return jobs::estimate_gamma_job(models, *data, job, meta, o);
  }
};

size_t chunk_files(const std::string& dir) {
  size_t n = 0;
  if (fs::exists(dir))
    for (const auto& e : fs::directory_iterator(dir)) n += e.path().extension() == ".npy";
  return n;
}

TEST(Jobs, GammaKilledAfterTwoTimestepsResumesToTheUninterruptedTableBitForBit) {
  const std::string dir = scratch();
  const GammaFixture f(dir);
  const jobs::GammaJobResult whole = f.run({f.model}, dir + "/whole.json");
  EXPECT_EQ(whole.resumed, 0);
  EXPECT_FALSE(fs::exists(jobs::chunk_folder(dir + "/whole.json")));
  // The estimator's numbers are unchanged: the table estimate_gamma fills by itself.
  GammaTable direct(f.meta, chain_of(*f.model).num_steps());
  estimate_gamma(*f.model, *f.data, f.job, direct);
  direct.save(dir + "/direct.json");
  EXPECT_EQ(slurp(dir + "/whole.json"), slurp(dir + "/direct.json"));

  const std::string out = dir + "/gamma.json", parts = jobs::chunk_folder(out);
  EXPECT_THROW(f.run({f.model}, out, 2), std::runtime_error);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(chunk_files(parts), 2u);
  // Killed again after one more, now on two devices: the chunks do not depend on the device count.
  const std::vector<std::shared_ptr<const Model>> two{f.model, open_model(f.spec)};
  EXPECT_THROW(f.run(two, out, 1), std::runtime_error);
  EXPECT_EQ(chunk_files(parts), 3u);
  const jobs::GammaJobResult resumed = f.run({f.model}, out);
  EXPECT_EQ(resumed.resumed, 3);
  EXPECT_EQ(slurp(out), slurp(dir + "/whole.json")) << "the resumed Gamma table differs from an uninterrupted run";
  EXPECT_FALSE(fs::exists(parts)) << "the chunk folder outlived the Gamma file";
  // The finished file counts as done: nothing is recomputed, the file stays the same.
  const jobs::GammaJobResult again = f.run({f.model}, out, 1);
  EXPECT_EQ(again.resumed, 6);
  EXPECT_EQ(slurp(out), slurp(dir + "/whole.json"));
  // The partial table an interrupted run of an older version saved in the Γ file resumes too.
  const std::string legacy = dir + "/legacy.json";
  GammaEstimation first_two = f.job;
  first_two.timesteps.resize(2);
  GammaTable partial(f.meta, chain_of(*f.model).num_steps());
  estimate_gamma(*f.model, *f.data, first_two, partial);
  partial.save(legacy);
  EXPECT_EQ(f.run({f.model}, legacy).resumed, 2);
  EXPECT_EQ(slurp(legacy), slurp(dir + "/whole.json"));
}

TEST(Jobs, GammaShardsResumedAndMergedEqualOneRun) {
  const std::string dir = scratch();
  const GammaFixture f(dir);
  f.run({f.model}, dir + "/whole.json");
  std::vector<std::string> paths;
  for (int64_t i : {1, 0}) {
    jobs::Shard shard;
    shard.index = i;
    shard.count = 2;
    const std::string path = jobs::shard_path(dir + "/gamma.json", shard, ".npz");
    // Shard 1 (images 120..229) killed after 4 timesteps, then resumed.
    if (i == 1) {
      EXPECT_THROW(f.run({f.model}, dir + "/gamma.json", 4, shard), std::runtime_error);
      EXPECT_EQ(chunk_files(jobs::chunk_folder(path)), 4u);
    }
    const jobs::GammaJobResult r = f.run({f.model}, dir + "/gamma.json", -1, shard);
    EXPECT_EQ(r.path, path);
    EXPECT_EQ(r.resumed, i == 1 ? 4 : 0);
    EXPECT_EQ(r.image_range, (std::pair<int64_t, int64_t>(i == 1 ? 120 : 0, i == 1 ? 230 : 120)));
    EXPECT_FALSE(fs::exists(jobs::chunk_folder(path)));
    paths.push_back(path);
  }
  jobs::merge_shards(jobs::read_shard_set(paths), dir + "/merged.json");
  EXPECT_EQ(slurp(dir + "/merged.json"), slurp(dir + "/whole.json")) << "merged shards differ from one run";
}

TEST(Jobs, GammaResumeWithAnotherSettingIsRefusedNamingIt) {
  const std::string dir = scratch();
  GammaFixture f(dir);
  const std::string out = dir + "/gamma.json";
  EXPECT_THROW(f.run({f.model}, out, 2), std::runtime_error);
  f.job.seed = 4;
  f.meta.settings["seed"] = "4";
  const std::string seed = error_of([&] { f.run({f.model}, out); });
  EXPECT_NE(seed.find("seed was '3', now '4'"), std::string::npos) << seed;
  f.job.seed = 3;
  f.meta.settings["seed"] = "3";
  f.job.num_images = 200;
  f.meta.settings["num_images"] = "200";
  const std::string images = error_of([&] { f.run({f.model}, out); });
  EXPECT_NE(images.find("num_images was '230', now '200'"), std::string::npos) << images;
  // The refused runs left the chunks alone: the same settings resume them.
  f.job.num_images = 230;
  f.meta.settings["num_images"] = "230";
  EXPECT_EQ(f.run({f.model}, out).resumed, 2);
}

TEST(Jobs, FeatureMomentShardsMergeToOnePass) {
  const std::string dir = scratch();
  torch::manual_seed(11);
  const torch::Tensor x = torch::randn({301, 5}, torch::kFloat64) * 0.7 + 0.4;
  const io::Settings settings = {{"features", "none"}};
  std::vector<std::string> paths;
  for (int64_t i = 0; i < 3; ++i) {
    jobs::Shard shard;
    shard.index = i;
    shard.count = 3;
    const auto [begin, end] = jobs::shard_range(301, 50, shard);
    eval::MomentAccumulator m;
    m.add(x.narrow(0, begin, end - begin));
    paths.push_back(jobs::shard_path(dir + "/stats.npz", shard));
    io::write_npz(paths.back(),
                  {{"count", io::from_tensor(torch::tensor({m.count()}, torch::kLong))},
                   {"shift", io::from_tensor(m.shift())},
                   {"sum", io::from_tensor(m.sum())},
                   {"outer", io::from_tensor(m.outer())},
                   {jobs::kShardKey, jobs::record_array(jobs::shard_record("fid", shard, settings, begin, end, 301))}});
  }
  EXPECT_EQ(jobs::merge_shards(jobs::read_shard_set(paths), dir + "/merged.npz")["count"], 301);
  const auto [mu, sigma] = eval::load_feature_stats(dir + "/merged.npz");
  const torch::Tensor xc = x - x.mean(0);
  EXPECT_TRUE(torch::allclose(mu, x.mean(0), 1e-14, 1e-15));
  EXPECT_TRUE(torch::allclose(sigma, xc.t().matmul(xc) / 300.0, 1e-12, 1e-14));
}

TEST(Jobs, OneFingerprintAndMismatchesRefused) {
  const std::string dir = scratch();
  const std::regex format("fnv1a64:[0-9a-f]{16}");
  auto a = open_model(kGmm), b = open_model("builtin:gmm:shape=1x6x6,k=4");
  EXPECT_TRUE(std::regex_match(model_fingerprint(*a), format)) << model_fingerprint(*a);
  EXPECT_EQ(model_fingerprint(*a), model_fingerprint(*open_model(kGmm)));
  EXPECT_NE(model_fingerprint(*a), model_fingerprint(*b));
  const std::string file = std::string(SCOREFLOW_FIXTURE_DIR) + "/tiny_eps.pt";
  EXPECT_EQ(model_fingerprint(*open_model(file)), io::hash_file(file));  // a file: its bytes
  EXPECT_EQ(io::hash_text(""), "fnv1a64:cbf29ce484222325");              // FNV-1a's offset basis
  EXPECT_EQ(seeds_fingerprint({1, 2, 3}), "3 seeds, " + io::hash_text("1,2,3,"));
  EXPECT_NE(seeds_fingerprint({1, 2, 3}), seeds_fingerprint({3, 2, 1}));
  EXPECT_EQ(io::path_fingerprint(""), "(none)");
  EXPECT_EQ(io::path_fingerprint("builtin:ring8"), "builtin:ring8");
  EXPECT_EQ(io::path_fingerprint(dir).rfind("folder fnv1a64:", 0), 0u);

  // A chunk folder of model a is refused for model b, naming the setting.
  const std::string parts = dir + "/out.npz.parts";
  {
    io::ChunkStore store(parts, jobs::model_settings(*a), false, "the output");
    store.save("samples-000000000-000000001", io::from_tensor(torch::zeros({1})));
  }
  const std::string refused = error_of([&] { io::ChunkStore(parts, jobs::model_settings(*b), false, "the output"); });
  EXPECT_NE(refused.find("model was '" + model_fingerprint(*a) + "', now '" + model_fingerprint(*b) + "'"),
            std::string::npos)
      << refused;
  EXPECT_NE(refused.find("start over with overwrite"), std::string::npos) << refused;
}
