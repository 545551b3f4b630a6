// AMED predictor and table files know their grid: amed_trained_sigmas gives it, and sample, compare
// and eval fid sample on it when given no grid of their own, while a conflicting grid is refused.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "scoreflow/amed.h"
#include "scoreflow/builtin.h"
#include "scoreflow/error.h"
#include "scoreflow/fingerprint.h"
#include "scoreflow/npy.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "scoreflow/sigmas.h"

namespace scoreflow {
namespace {

const std::string kRing = "builtin:ring8";

std::string tmp_path(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/scoreflow_amed_grid_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

/// A fresh (untrained) table-mode AMED-Solver predictor for builtin:ring8 on the 4-step
/// vp_time_uniform grid, saved once; `table` also as JSON.
struct Files {
  std::string predictor, table;
  std::vector<double> sigmas;
};
const Files& files() {
  static const Files f = [] {
    Files out;
    auto model = make_builtin(kRing);
    AmedRecord r;
    r.student = "amed";
    r.teacher = "heun";
    r.steps = 4;
    r.feature_dim = 4;
    r.sigmas = make_sigmas("vp_time_uniform", 4, model->metadata().schedule, KeyValueArgs());
    r.schedule = model->metadata().schedule.describe();
    r.model = model->name();
    r.model_hash = model_fingerprint(*model);
    torch::manual_seed(0);
    AmedPredictor p(r);
    out.predictor = tmp_path("ring.pt");
    out.table = tmp_path("ring.json");
    p.save(out.predictor);
    save_amed_table(out.table, r, p.table());
    out.sigmas = r.sigmas;
    return out;
  }();
  return f;
}

TEST(AmedGrid, FilesGiveTheGridTheyWereTrainedOn) {
  const Files& f = files();
  EXPECT_EQ(amed_trained_sigmas("amed", "predictor=" + f.predictor), f.sigmas);
  EXPECT_EQ(amed_trained_sigmas("amed", "table=" + f.table + ",denoise_to_zero=true"), f.sigmas);
  EXPECT_TRUE(amed_trained_sigmas("amed", "r=0.5").empty());  // fixed coefficients: any grid
  EXPECT_TRUE(amed_trained_sigmas("heun", "predictor=" + f.predictor).empty());
  EXPECT_THROW(amed_trained_sigmas("amed", "predictor=" + tmp_path("missing.pt")), Error);
  // That grid samples; the default grid of the same length does not.
  auto model = make_builtin(kRing);
  auto sampler = make_sampler("amed", "predictor=" + f.predictor);
  SampleJob job;
  job.seeds = {0, 1};
  job.sigmas = f.sigmas;
  EXPECT_EQ(run_sampler(*sampler, model, job).samples.sizes(), (std::vector<int64_t>{2, 2}));
  job.sigmas = make_sigmas("karras", 4, model->metadata().schedule, KeyValueArgs());
  EXPECT_THROW(run_sampler(*sampler, model, job), Error);
}

}  // namespace
}  // namespace scoreflow

#ifdef SCOREFLOW_CLI_PATH
#include "tests/support/cli_run.h"

namespace scoreflow {
namespace {
using testing_cli::run;

TEST(AmedGridCli, SampleCompareAndEvalFidUseThePredictorsGridUnlessOneIsGiven) {
  const Files& f = files();
  // sample: no grid given -> the predictor's (the default 20 Karras steps would be refused).
  auto s = run("sample --model " + kRing + " --sampler amed --sampler-args predictor=" + f.predictor +
               " --seeds 0-3 --json");
  ASSERT_EQ(s.code, 0) << s.err;
  auto doc = nlohmann::json::parse(s.out);
  EXPECT_EQ(doc["sigmas"].get<std::vector<double>>(), f.sigmas);
  EXPECT_EQ(doc["nfe"].get<int>(), 6);  // 2 (steps - 1)
  auto t = run("sample --model " + kRing + " --sampler amed --sampler-args table=" + f.table + " --seeds 0-3 --json");
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_EQ(nlohmann::json::parse(t.out)["sigmas"].get<std::vector<double>>(), f.sigmas);
  // A conflicting explicit grid is still refused, naming the field.
  for (const std::string& grid : {"--steps 6", "--nfe 6", "--schedule karras", "--sigmas 80,10,1,0.1"}) {
    auto r = run("sample --model " + kRing + " --sampler amed --sampler-args predictor=" + f.predictor + " " + grid +
                 " --seeds 0 --json");
    EXPECT_EQ(r.code, 1) << grid;
    EXPECT_NE(r.err.find("'sigmas' differs"), std::string::npos) << grid << ": " << r.err;
  }
  // compare: the cell at the predictor's NFE runs on its grid.
  const std::string dir = tmp_path("compare");
  auto c = run("compare --model " + kRing + " --samplers amed --sampler-args amed:predictor=" + f.predictor +
               " --nfe 6 --num 4 --metric ode-error --reference-steps 20 --out-dir " + dir + " --json");
  ASSERT_EQ(c.code, 0) << c.err;
  auto cells = nlohmann::json::parse(c.out)["cells"];
  ASSERT_EQ(cells.size(), 1u);
  EXPECT_FALSE(cells[0].contains("error")) << cells[0].dump();
  // eval fid with a model samples on the predictor's grid too.
  const std::string ref = tmp_path("ref.npy");
  torch::manual_seed(0);
  io::write_npy(ref, io::from_tensor(2 * torch::randn({64, 2})));
  auto e = run("eval fid --model " + kRing + " --sampler amed --sampler-args predictor=" + f.predictor +
               " --seeds 0-15 --features none --ref-data " + ref + " --json");
  ASSERT_EQ(e.code, 0) << e.err;
  auto fid = run("eval fid --model " + kRing + " --sampler amed --sampler-args predictor=" + f.predictor +
                 " --steps 6 --seeds 0-15 --features none --ref-data " + ref + " --json");
  EXPECT_EQ(fid.code, 1);
  EXPECT_NE(fid.err.find("'sigmas' differs"), std::string::npos) << fid.err;
}

}  // namespace
}  // namespace scoreflow
#endif
