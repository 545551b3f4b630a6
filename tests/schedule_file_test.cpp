// Schedule files (`--schedule file:PATH.json`): the round trip, the refusals, and one CLI run that
// samples on a file and one that is refused for another model.
#include "scoreflow/schedule_file.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "eval/sweep.h"
#include "scoreflow/error.h"
#include "scoreflow/sigmas.h"
#include "tests/support/cli_run.h"
#include "tests/support/error_text.h"

using namespace scoreflow;
using scoreflow::testing_cli::fresh_dir;
using scoreflow::testing_cli::Outcome;
using scoreflow::testing_cli::run_cli;

namespace {

using scoreflow::testing_support::error_of;

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST(ScheduleFile, RoundTripsBitForBitWithItsRecord) {
  const std::string dir = fresh_dir("schedule_file_rt");
  auto model = open_model("builtin:gaussian:shape=2,mean=0.3,std=0.5");
  ScheduleFile f =
      schedule_file_for(*model, make_sigmas("kl_optimal", 6, model->metadata().schedule, KeyValueArgs("")), "gits");
  f.sigmas[2] = f.sigmas[3] + (f.sigmas[1] - f.sigmas[3]) / 3.0;  // not a short decimal
  f.sampler = "ipndm";
  f.nfe = 6;
  f.teacher = "heun:60";
  f.warmup = 256;
  f.seed = 12345678901234ull;
  f.cost = 0.125;
  f.settings = {{"final", "zero"}, {"lr", "0.02"}};
  save_schedule_file(dir + "/g.json", f);
  const ScheduleFile g = load_schedule_file(dir + "/g.json");
  EXPECT_EQ(g.sigmas, f.sigmas);
  EXPECT_EQ(g.method, "gits");
  EXPECT_EQ(g.sampler, "ipndm");
  EXPECT_EQ(g.nfe, 6);
  EXPECT_EQ(g.model, model->name());
  EXPECT_EQ(g.model_hash, f.model_hash);
  EXPECT_EQ(g.schedule, model->metadata().schedule.describe());
  EXPECT_EQ(g.teacher, "heun:60");
  EXPECT_EQ(g.warmup, 256);
  EXPECT_EQ(g.seed, 12345678901234ull);
  EXPECT_EQ(g.cost, 0.125);
  EXPECT_EQ(g.settings, f.settings);  // read back sorted by name: already so here
  // resolve_sigmas: the file's steps when none are asked, the same when they agree, refused otherwise.
  EXPECT_EQ(resolve_sigmas("file:" + dir + "/g.json", 0, 20, *model, KeyValueArgs("")), f.sigmas);
  EXPECT_EQ(resolve_sigmas("file:" + dir + "/g.json", 6, 20, *model, KeyValueArgs("")), f.sigmas);
  EXPECT_NE(error_of([&] {
              resolve_sigmas("file:" + dir + "/g.json", 5, 20, *model, KeyValueArgs(""));
            }).find("holds 6 steps (made for ipndm at NFE 6), not the 5 asked for"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              resolve_sigmas("file:" + dir + "/g.json", 0, 20, *model, KeyValueArgs("rho=3"));
            }).find("takes no schedule args"),
            std::string::npos);
  // A grid name still goes to make_sigmas, with the default steps.
  EXPECT_EQ(resolve_sigmas("karras", 0, 7, *model, KeyValueArgs("")).size(), 8u);
}

TEST(ScheduleFile, RefusesAnotherModelUnlessForcedAndBrokenFiles) {
  const std::string dir = fresh_dir("schedule_file_refuse");
  auto model = open_model("builtin:gaussian:shape=2,mean=0.3,std=0.5");
  auto other = open_model("builtin:gaussian:shape=2,mean=0.4,std=0.5");
  const auto sigmas = make_sigmas("karras", 4, model->metadata().schedule, KeyValueArgs(""));
  save_schedule_file(dir + "/g.json", schedule_file_for(*model, sigmas, "list"));
  const std::string spec = "file:" + dir + "/g.json";
  try {
    resolve_sigmas(spec, 0, 20, *other, KeyValueArgs(""));
    ADD_FAILURE() << "another model was accepted";
  } catch (const ScheduleMismatch& e) {
    EXPECT_NE(std::string(e.what()).find("field 'model_hash' differs"), std::string::npos) << e.what();
  }
  EXPECT_EQ(resolve_sigmas(spec, 0, 20, *other, KeyValueArgs(""), /*force=*/true), sigmas);
  auto vp = open_model("builtin:gaussian:shape=2,mean=0.3,std=0.5,schedule=vp_linear");
  EXPECT_THROW(resolve_sigmas(spec, 0, 20, *vp, KeyValueArgs("")), ScheduleMismatch);

  write(dir + "/not.json", "not json");
  EXPECT_NE(error_of([&] { load_schedule_file(dir + "/not.json"); }).find("is not JSON"), std::string::npos);
  write(dir + "/format.json", R"({"format": "other", "sigmas": [2, 1, 0]})");
  EXPECT_NE(error_of([&] { load_schedule_file(dir + "/format.json"); }).find("field 'format'"), std::string::npos);
  write(dir + "/up.json",
        R"({"format": "scoreflow-schedule/1", "sigmas": [2, 3, 0], "model_hash": "x", "schedule": "y"})");
  EXPECT_NE(error_of([&] { load_schedule_file(dir + "/up.json"); }).find("not strictly decreasing at position 1"),
            std::string::npos);
  write(dir + "/nozero.json",
        R"({"format": "scoreflow-schedule/1", "sigmas": [2, 1], "model_hash": "x", "schedule": "y"})");
  EXPECT_NE(error_of([&] { load_schedule_file(dir + "/nozero.json"); }).find("must end in 0"), std::string::npos);
  EXPECT_NE(error_of([&] { load_schedule_file(dir + "/absent.json"); }).find("cannot read"), std::string::npos);
  EXPECT_THROW(save_schedule_file(dir + "/bad.json", schedule_file_for(*model, {1, 2, 0}, "list")), Error);
}

TEST(ScheduleFile, CliSamplesOnAFileAndRefusesItForAnotherModelNamingForce) {
  const std::string dir = fresh_dir("schedule_file_cli");
  auto model = open_model("builtin:gaussian:shape=2,mean=0.3,std=0.5");
  save_schedule_file(
      dir + "/g.json",
      schedule_file_for(*model, make_sigmas("karras", 5, model->metadata().schedule, KeyValueArgs("")), "list"));
  const Outcome ok = run_cli({"sample", "--model", "builtin:gaussian:shape=2,mean=0.3,std=0.5", "--sampler", "euler",
                              "--schedule", "file:" + dir + "/g.json", "--seeds", "0-3", "--json"},
                             dir + "/ok");
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.out.find("\"nfe\": 5"), std::string::npos) << ok.out;
  const Outcome refused = run_cli({"sample", "--model", "builtin:gaussian:shape=2,mean=0.4,std=0.5", "--sampler",
                                   "euler", "--schedule", "file:" + dir + "/g.json", "--seeds", "0-3", "--json"},
                                  dir + "/refused");
  EXPECT_NE(refused.code, 0);
  EXPECT_NE(refused.err.find("field 'model_hash' differs (--force uses it anyway)"), std::string::npos) << refused.err;
  EXPECT_TRUE(refused.out.empty()) << refused.out;
}

// compare's schedule axis in the report: one row per (sampler, grid), a schedule column in the table and
// the CSV; without the axis the layout is the old one.
TEST(SweepReport, ScheduleAxisAddsAColumnAndARowPerGrid) {
  std::vector<eval::SweepCell> cells;
  for (const char* schedule : {"karras", "kl_optimal"})
    for (int nfe : {3, 5}) {
      eval::SweepCell c;
      c.sampler = "euler";
      c.schedule = schedule;
      c.nfe_budget = nfe;
      c.steps = nfe;
      c.nfe_used = nfe;
      c.metric = nfe * (c.schedule == "karras" ? 1.0 : 2.0);
      cells.push_back(c);
    }
  const std::string table = eval::sweep_markdown(cells, "ode-error");
  EXPECT_NE(table.find("| ode-error | schedule | NFE 3 | NFE 5 |"), std::string::npos) << table;
  EXPECT_NE(table.find("| euler | karras | 3 | 5 |"), std::string::npos) << table;
  EXPECT_NE(table.find("| euler | kl_optimal | 6 | 10 |"), std::string::npos) << table;
  const std::string csv = eval::sweep_csv(cells, "ode-error");
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "sampler,schedule,nfe_budget,steps,nfe_used,ode-error,seconds,error");
  EXPECT_NE(csv.find("euler,kl_optimal,5,5,5,10,"), std::string::npos) << csv;
  const std::string svg = eval::sweep_svg(cells, {});
  EXPECT_NE(svg.find("euler, kl_optimal"), std::string::npos);
  for (auto& c : cells) c.schedule.clear();
  cells.resize(2);
  EXPECT_EQ(eval::sweep_csv(cells, "m").substr(0, 45), "sampler,nfe_budget,steps,nfe_used,m,seconds,e");
  EXPECT_NE(eval::sweep_markdown(cells, "m").find("| m | NFE 3 | NFE 5 |"), std::string::npos);
}
