// jobs::run_sample_job (scoreflow/jobs/sample.h), in process: the files `scoreflow sample` writes,
// resumed after a kill and split over devices to the same bytes, an empty shard, and the
// refusals (naming fields, before any file is written).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/error_flags.h"
#include "scoreflow/device.h"
#include "scoreflow/error.h"
#include "scoreflow/jobs/analytic.h"
#include "scoreflow/jobs/sample.h"
#include "scoreflow/registry.h"
#include "scoreflow/sigmas.h"
#include "tests/support/io_test_util.h"
#include "tests/support/jobs_test_util.h"

namespace scoreflow {
namespace {
namespace fs = std::filesystem;
using testing_io::expect_error;

// A stochastic sampler, so that every draw (not only the initial noise) must follow the seed.
const char* const kGmm = "builtin:gmm:shape=1x6x6,k=3";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

class SampleOutputs : public testing_io::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    model_ = open_model(kGmm);
    sampler_ = make_sampler("ddim", "eta=1");
    job_.sigmas = make_sigmas("karras", 5, model_->metadata().schedule, KeyValueArgs(""));
    for (uint64_t s = 0; s < 10; ++s) job_.seeds.push_back(200 + s);
    job_.batch = 2;
  }
  jobs::SampleJobOptions options(const std::string& name) const {
    jobs::SampleJobOptions o;
    o.outputs.npz = path(name + ".npz");
    o.outputs.grid = path(name + ".png");
    o.outputs.png_dir = path(name + "-png");
    o.settings.sampler_args = "eta=1";
    return o;
  }
  jobs::SampleJobResult run(const jobs::SampleJobOptions& o, int devices = 1) const {
    std::vector<std::shared_ptr<const Model>> models(devices, model_);
    return jobs::run_sample_job(*sampler_, models, job_, o);
  }
  std::shared_ptr<const Model> model_;
  std::unique_ptr<Sampler> sampler_;
  SampleJob job_;
};

TEST_F(SampleOutputs, AKilledRunResumesToTheSameFilesByteForByte) {
  const jobs::SampleJobResult full = run(options("full"));
  EXPECT_EQ(full.resumed, 0);
  EXPECT_EQ(full.written.npz, path("full.npz"));
  EXPECT_EQ(full.written.grid, path("full.png"));
  EXPECT_EQ(full.result.samples.size(0), 10);
  EXPECT_EQ(full.result.nfe, 5);  // DDIM: one network call per step
  EXPECT_FALSE(fs::exists(path("full.npz.parts"))) << "the chunk folder outlived the outputs";

  // A run killed after its first 4 seeds left their chunks next to its npz.
  const jobs::SampleJobOptions o = options("resumed");
  const io::Settings settings = jobs::sample_settings(*model_, *sampler_, job_, job_.seeds, o.settings);
  testing_jobs::run_killed_after(*sampler_, model_, job_, jobs::chunk_folder(o.outputs.npz), settings, 4,
                                 "outputs.npz");
  int64_t sampled = 0;
  jobs::SampleJobOptions again = o;
  again.on_batch = [&](int64_t done, int64_t total) {
    sampled = done;
    EXPECT_EQ(total, 10);
  };
  const jobs::SampleJobResult resumed = run(again);
  EXPECT_EQ(resumed.resumed, 4);
  EXPECT_EQ(sampled, 10);
  EXPECT_EQ(slurp(path("resumed.npz")), slurp(path("full.npz")));
  EXPECT_EQ(slurp(path("resumed.png")), slurp(path("full.png")));
  for (uint64_t seed : {200, 203, 209}) {
    const std::string name = "/seed000" + std::to_string(seed) + ".png";
    ASSERT_TRUE(fs::exists(path("full-png") + name)) << name;
    EXPECT_EQ(slurp(path("resumed-png") + name), slurp(path("full-png") + name)) << name;
  }
  EXPECT_FALSE(fs::exists(path("resumed.npz.parts")));

  // Two devices (two CPU workers) write the same file as one.
  const jobs::SampleJobResult split = run(options("split"), 2);
  EXPECT_EQ(slurp(path("split.npz")), slurp(path("full.npz")));
  EXPECT_TRUE(torch::equal(split.result.samples, full.result.samples));
}

TEST_F(SampleOutputs, AResumeWithOtherSettingsIsRefusedNamingTheSetting) {
  const jobs::SampleJobOptions o = options("out");
  testing_jobs::run_killed_after(*sampler_, model_, job_, jobs::chunk_folder(o.outputs.npz),
                                 jobs::sample_settings(*model_, *sampler_, job_, job_.seeds, o.settings), 2,
                                 "outputs.npz");
  jobs::SampleJobOptions other = o;
  other.settings.dtype = "bf16";
  try {
    run(other);
    ADD_FAILURE() << "a resume with another dtype was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unfinished run of outputs.npz with different settings: dtype was 'fp32', "
                                         "now 'bf16'"),
              std::string::npos)
        << e.what();
    EXPECT_NE(cli::flag_message(e).find("unfinished run of --npz with"), std::string::npos) << cli::flag_message(e);
  }
  EXPECT_FALSE(fs::exists(o.outputs.npz));
  other.overwrite = true;
  EXPECT_EQ(run(other).resumed, 0);
}

TEST_F(SampleOutputs, AnEmptyShardWritesAnNpzWithNoRowsAndNoGrid) {
  jobs::SampleJobOptions o = options("out");
  o.shard = jobs::parse_shard("2/3");
  o.all_seeds = {1, 2};  // one batch of 2 for three shards: shard 2 gets none
  o.first_index = 2;
  SampleJob empty = job_;
  empty.seeds.clear();
  const jobs::SampleJobResult r = jobs::run_sample_job(*sampler_, {model_}, empty, o);
  EXPECT_EQ(r.result.samples.sizes(), (std::vector<int64_t>{0, 1, 6, 6}));
  EXPECT_EQ(r.result.nfe, 5);
  EXPECT_EQ(r.written.npz, path("out.shard-2-of-3.npz"));
  EXPECT_EQ(r.written.grid, "");
  EXPECT_FALSE(fs::exists(path("out.shard-2-of-3.png")));
  const auto arrays = io::read_npz(r.written.npz);
  EXPECT_EQ(arrays.at("samples").shape, (std::vector<int64_t>{0, 1, 6, 6}));
  EXPECT_EQ(arrays.at("seeds").shape, (std::vector<int64_t>{0}));
  const nlohmann::json record = jobs::read_record(arrays, r.written.npz);
  EXPECT_EQ(record.at("kind"), "samples");
  EXPECT_EQ(record.at("begin"), 2);
  EXPECT_EQ(record.at("end"), 2);
  EXPECT_EQ(record.at("total"), 2);
}

TEST_F(SampleOutputs, RefusalsNameTheFieldsAndWriteNothing) {
  jobs::SampleJobOptions none;
  none.settings.sampler_args = "eta=1";
  try {
    run(none);
    ADD_FAILURE() << "nothing to write was accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "nothing to write: give outputs.grid, outputs.png_dir, outputs.npz or outputs.result_only");
    EXPECT_EQ(cli::flag_message(e), "nothing to write: give --out, --out-dir, --npz or --json");
  }
  none.outputs.result_only = true;
  EXPECT_EQ(run(none).result.samples.size(0), 10);
  EXPECT_TRUE(entries().empty());

  auto flat = open_model("builtin:gaussian:shape=8");
  jobs::SampleJobOptions pictures = options("flat");
  try {
    jobs::run_sample_job(*sampler_, {flat}, job_, pictures);
    ADD_FAILURE() << "PNGs of non-image samples were accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "outputs.grid/outputs.png_dir need image-shaped samples [C,H,W] with C in 1,3,4; this model's sample "
              "shape is [8] (use outputs.npz)");
    EXPECT_EQ(e.field(), "outputs.grid");
  }
  EXPECT_TRUE(entries().empty()) << "a refused job wrote something";
  expect_error(
      [&] {
        jobs::SampleJobOptions o = options("x");
        o.outputs.npz = path("nowhere/x.npz");
        run(o);
      },
      {"outputs.npz '" + path("nowhere/x.npz") + "'"});
  EXPECT_TRUE(entries().empty());
}

TEST(JobChoices, DevicesFinalStepsAndGammaTimestepsAreRefusedNamingTheField) {
  EXPECT_EQ(parse_device("cpu"), torch::Device(torch::kCPU));
  expect_error([] { parse_device("tpu"); }, {"device 'tpu' is unknown; valid: cpu, cuda, cuda:N"});
  try {
    parse_device("tpu");
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "device");
    EXPECT_EQ(cli::flag_message(e), "--device 'tpu' is unknown; valid: cpu, cuda, cuda:N");
  }
  auto ddim = make_sampler("ddim", "");
  EXPECT_EQ(jobs::choose_final("", *ddim, ""), FinalStep::Zero);
  EXPECT_EQ(jobs::choose_final("denoise", *ddim, ""), FinalStep::Denoise);
  expect_error([&] { jobs::choose_final("last", *ddim, ""); },
               {"final: unknown value 'last'; valid: zero, none, denoise"});
  try {
    jobs::choose_final("none", *ddim, "denoise_to_zero=true");
    ADD_FAILURE() << "denoise_to_zero with final none was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(cli::flag_message(e),
              "--sampler-args denoise_to_zero=true is --final denoise on a grid ending in 0; with --final none leave "
              "it out");
  }

  // A discrete VP chain of N steps: "all" is 1..N, "4" the four evenly spaced ones.
  const DiscreteChain chain = chain_of(*open_model("builtin:gaussian:schedule=vp_discrete"));
  const std::vector<int64_t> all = jobs::gamma_timesteps(chain, "all");
  ASSERT_EQ(all.size(), static_cast<size_t>(chain.num_steps()));
  EXPECT_EQ(all.front(), 1);
  EXPECT_EQ(all.back(), chain.num_steps());
  EXPECT_EQ(jobs::gamma_timesteps(chain, "4"), even_timesteps(chain.num_steps(), 4));
  expect_error([&] { jobs::gamma_timesteps(chain, "1"); }, {"timesteps must be in [2, "});
  expect_error([&] { jobs::gamma_timesteps(chain, "some"); }, {"timesteps 'some' is not 'all' or a number"});
}

}  // namespace
}  // namespace scoreflow
