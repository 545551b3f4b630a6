// The train-amed job in process (scoreflow/amed_job.h): restarts that resume bit for bit after an
// interruption, a resume with other settings refused naming the setting, option errors naming
// fields before anything is written, and the teacher grid (nested or log-uniform).
#include "scoreflow/amed_job.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "scoreflow/builtin.h"
#include "scoreflow/error.h"
#include "scoreflow/jobs.h"
#include "scoreflow/sigmas.h"
#include "tests/support/io_test_util.h"
#include "tests/support/jobs_test_util.h"

using namespace scoreflow;

namespace {

/// Three restarts of a tiny AMED-Solver job on the 2-D mixture: 2 batches x 3 steps each.
jobs::AmedJobOptions tiny(const std::string& dir) {
  jobs::AmedJobOptions o;
  o.steps = 3;
  o.afs = true;
  o.num_trajectories = 64;
  o.batch = 32;
  o.restarts = 3;
  o.validate = 32;
  o.seed = 1;
  o.out = dir + "/amed.pt";
  o.log = dir + "/loss.csv";
  return o;
}

struct Interrupted {};

}  // namespace

/// Each test gets its own empty folder (dir_).
class AmedJob : public testing_io::TempDirTest {};

TEST_F(AmedJob, RestartsResumeAfterAnInterruptionAsAnUninterruptedJob) {
  auto model = make_builtin("builtin:gmm:shape=2");
  const std::string dir = dir_.string();
  std::filesystem::create_directories(dir + "/whole");
  std::filesystem::create_directories(dir + "/run");
  const jobs::AmedJobResult whole = jobs::train_amed_job(model, tiny(dir + "/whole"));
  ASSERT_EQ(whole.runs.size(), 3u);
  EXPECT_EQ(whole.nfe, 5);  // 3 intervals, two calls each, one saved by AFS
  EXPECT_EQ(whole.reused, 0);
  EXPECT_EQ(whole.train.seed, whole.runs[whole.kept].seed);
  EXPECT_FALSE(std::filesystem::exists(dir + "/whole/amed.pt.parts"));

  // Interrupted at the first step of the third restart: two finished restarts are kept.
  jobs::AmedJobOptions o = tiny(dir + "/run");
  const int64_t per_run = 2 * 3;
  o.on_progress = [&](int64_t done, int64_t total, const std::string&) {
    EXPECT_EQ(total, 3 * per_run);
    if (done == 2 * per_run + 1) throw Interrupted{};
  };
  EXPECT_THROW(jobs::train_amed_job(model, o), Interrupted);
  EXPECT_FALSE(std::filesystem::exists(o.out));
  EXPECT_TRUE(std::filesystem::exists(o.out + ".parts/seed-2.pt"));

  // Another learning rate: refused, naming the setting, the finished restarts left alone.
  jobs::AmedJobOptions other = tiny(dir + "/run");
  other.lr = 1e-3;
  // The error names the output whose run it is (field "out"), then the way to start over.
  testing_jobs::expect_field_error([&] { jobs::train_amed_job(model, other); }, "out",
                                   "with different settings: lr was");
  EXPECT_TRUE(std::filesystem::exists(o.out + ".parts/seed-2.pt"));

  o.on_progress = nullptr;
  std::vector<std::string> notes;
  o.on_note = [&](const std::string& line) { notes.push_back(line); };
  const jobs::AmedJobResult resumed = jobs::train_amed_job(model, o);
  EXPECT_EQ(resumed.reused, 2);
  for (const std::string& line : notes) EXPECT_EQ(line.find("[seed 2]"), std::string::npos) << line;
  ASSERT_EQ(resumed.runs.size(), whole.runs.size());
  for (size_t k = 0; k < whole.runs.size(); ++k) {
    EXPECT_EQ(resumed.runs[k].seed, whole.runs[k].seed);
    EXPECT_EQ(resumed.runs[k].first_loss, whole.runs[k].first_loss);
    EXPECT_EQ(resumed.runs[k].last_loss, whole.runs[k].last_loss);
    EXPECT_EQ(resumed.runs[k].validation_rms, whole.runs[k].validation_rms);
  }
  EXPECT_EQ(resumed.kept, whole.kept);
  EXPECT_EQ(testing_io::read_bytes(dir + "/run/loss.csv"), testing_io::read_bytes(dir + "/whole/loss.csv"));
  const auto a = AmedPredictor::load(o.out).table(), b = AmedPredictor::load(dir + "/whole/amed.pt").table();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].r, b[i].r) << i;
    EXPECT_EQ(a[i].c, b[i].c) << i;
    EXPECT_EQ(a[i].a, b[i].a) << i;
  }
  EXPECT_FALSE(std::filesystem::exists(o.out + ".parts"));
}

TEST_F(AmedJob, OptionErrorsNameTheFieldBeforeAnythingIsWritten) {
  auto model = make_builtin("builtin:ring8");
  const std::string dir = dir_.string();
  jobs::AmedJobOptions o = tiny(dir);
  o.restarts = 0;
  testing_jobs::expect_field_error([&] { jobs::train_amed_job(model, o); }, "restarts", "restarts must be >= 1, got 0");
  o.restarts = 2;
  o.validate = 0;
  testing_jobs::expect_field_error(
      [&] { jobs::train_amed_job(model, o); }, "restarts",
      "restarts 2 keeps the run with the lowest end-to-end error, so it needs validate N > 0");
  o = tiny(dir);
  o.final = FinalStep::Zero;
  o.steps = 1;
  testing_jobs::expect_field_error(
      [&] { jobs::train_amed_job(model, o); }, "steps",
      "steps must be in [2, 1000] with final zero (AMED needs one interval between positive sigmas), got 1");
  o = tiny(dir);
  o.teacher = "ipndm";
  testing_jobs::expect_field_error([&] { jobs::train_amed_job(model, o); }, "student",
                                   "valid: student amed teacher heun");
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

TEST_F(AmedJob, TeacherGridNestsTheStudentsOrInsertsLogUniformPoints) {
  auto model = make_builtin("builtin:gmm:shape=2");
  const NoiseSchedule& noise = model->metadata().schedule;
  // Karras ρ = 7 with 3 intervals and M = 2: the 10-point Karras grid holds every student point.
  std::vector<double> student = make_sigmas("karras", 4, noise, KeyValueArgs(""));
  student.pop_back();  // the grid ends at sigma_min (final none)
  bool nested = false;
  const std::vector<double> fine = jobs::amed_teacher_grid("karras", "", 2, student, noise, &nested);
  EXPECT_TRUE(nested);
  ASSERT_EQ(fine.size(), 10u);
  for (int n = 0; n <= 3; ++n) EXPECT_NEAR(fine[3 * n], student[n], 1e-9 * student[n]) << n;
  EXPECT_GT(fine[1], fine[2]);
  // A grid no named grid nests: one geometric mean inserted per interval (M = 1).
  const std::vector<double> own = {10.0, 3.0, 0.5, 0.0};
  const std::vector<double> log_uniform = jobs::amed_teacher_grid("karras", "", 1, own, noise, &nested);
  EXPECT_FALSE(nested);
  ASSERT_EQ(log_uniform.size(), 5u);
  EXPECT_DOUBLE_EQ(log_uniform[0], 10.0);
  EXPECT_NEAR(log_uniform[1], std::sqrt(30.0), 1e-12);
  EXPECT_DOUBLE_EQ(log_uniform[2], 3.0);
  EXPECT_NEAR(log_uniform[3], std::sqrt(1.5), 1e-12);
  EXPECT_DOUBLE_EQ(log_uniform[4], 0.5);
}

TEST_F(AmedJob, RestartSettingsRecordConditioningOnlyWhenThereIsAny) {
  auto model = make_builtin("builtin:ring8");
  AmedTrainOptions t;
  t.sigmas = {2.0, 1.0, 0.5};
  t.teacher_sigmas = {2.0, 1.4, 1.0, 0.7, 0.5};
  jobs::AmedJobOptions o;
  o.restarts = 2;
  // Unconditioned with guidance 1: the model's entries and the 14 training ones, as folders made
  // before conditioning existed recorded them.
  const io::Settings plain = jobs::amed_restart_settings(*model, t, o);
  ASSERT_EQ(plain.size(), jobs::model_settings(*model).size() + 14);
  EXPECT_EQ(plain.back(), (std::pair<std::string, std::string>{"validate", "1024"}));
  o.conditioning.guidance = 2;
  const io::Settings guided = jobs::amed_restart_settings(*model, t, o);
  ASSERT_EQ(guided.size(), plain.size() + 1);
  EXPECT_EQ(guided.back(), (std::pair<std::string, std::string>{"guidance", "2"}));
}
