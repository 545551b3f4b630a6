// The search-schedule job in process (scoreflow/search_job.h): the teacher's SAMPLER:STEPS, the
// searches it runs equal the library's own calls, a search interrupted and run again writes the
// uninterrupted grid, and option errors name fields before anything is written.
#include "scoreflow/search_job.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "scoreflow/builtin.h"
#include "scoreflow/error.h"
#include "scoreflow/ld3.h"
#include "scoreflow/registry.h"
#include "scoreflow/schedule_search.h"
#include "scoreflow/sigmas.h"
#include "tests/support/io_test_util.h"
#include "tests/support/jobs_test_util.h"

using namespace scoreflow;

namespace {

const char* const kGaussian = "builtin:gaussian:shape=3,mean=0.3,std=0.5";

jobs::ScheduleSearchOptions gits(const std::string& out) {
  jobs::ScheduleSearchOptions o;
  o.sampler = "euler";
  o.nfe = 3;
  o.teacher = "heun:12";
  o.warmup = 16;
  o.batch = 4;
  o.seed = 3;
  o.out = out;
  return o;
}

struct Interrupted {};

}  // namespace

/// Each test gets its own empty folder (dir_).
class SearchJob : public testing_io::TempDirTest {};

TEST_F(SearchJob, ParsesTheTeacher) {
  auto [heun, steps] = jobs::parse_teacher("heun:60");
  EXPECT_EQ(heun->name(), "heun");
  EXPECT_EQ(steps, 60);
  testing_jobs::expect_field_error([] { jobs::parse_teacher("heun"); }, "teacher",
                                   "teacher 'heun' must be SAMPLER:STEPS, e.g. heun:60");
  for (const char* bad : {"heun:1", "heun:1001", "heun:2.5", "heun:x", "heun:4,5"})
    testing_jobs::expect_field_error([&] { jobs::parse_teacher(bad); }, "teacher",
                                     "': STEPS must be one integer in [2, 1000]");
}

TEST_F(SearchJob, GitsIsTheLibrarySearchAndResumesAfterAnInterruption) {
  auto model = make_builtin(kGaussian);
  const std::string dir = dir_.string();
  jobs::ScheduleSearchOptions o = gits(dir + "/sched.json");
  // Interrupted after the second of four warm-up batches.
  o.on_progress = [](const std::string& phase, int64_t done, int64_t total) {
    EXPECT_EQ(phase, "gits");
    EXPECT_EQ(total, 16);
    if (done == 8) throw Interrupted{};
  };
  EXPECT_THROW(jobs::search_schedule_job(model, o), Interrupted);
  EXPECT_FALSE(std::filesystem::exists(o.out));
  o.on_progress = nullptr;
  const jobs::ScheduleSearchResult r = jobs::search_schedule_job(model, o);
  EXPECT_EQ(r.details.at("resumed_batches").get<int64_t>(), 2);

  GitsOptions g;
  g.candidates = make_sigmas("karras", 12, model->metadata().schedule, KeyValueArgs(""));
  g.steps = 3;
  g.warmup = 16;
  g.batch = 4;
  g.seed = 3;
  auto euler = make_sampler("euler"), heun = make_sampler("heun");
  const GitsResult want = search_gits(model, *euler, *heun, g);
  EXPECT_EQ(r.sigmas, want.sigmas);
  EXPECT_EQ(r.cost, want.cost);
  EXPECT_EQ(r.steps, 3);
  const ScheduleFile f = load_schedule_file(o.out);
  EXPECT_EQ(f.sigmas, want.sigmas);
  EXPECT_EQ(f.sampler, "euler");
  EXPECT_EQ(f.nfe, 3);
  EXPECT_EQ(f.teacher, "heun:12 on karras, metric dev, coeff 1.15");
  EXPECT_FALSE(std::filesystem::exists(o.out + ".parts"));
}

TEST_F(SearchJob, Ld3IsTheLibrarySearchAndItsFileEndsInZero) {
  auto model = make_builtin(kGaussian);
  const std::string dir = dir_.string();
  jobs::ScheduleSearchOptions o = gits(dir + "/sched.json");
  o.method = "ld3";
  o.final = "none";
  o.warmup = 8;
  o.valid = 4;
  o.iterations = 4;
  o.train_batch = 4;
  o.validate_every = 2;
  o.lr = 0.05;
  EXPECT_EQ(o.samples(), 12);
  const jobs::ScheduleSearchResult r = jobs::search_schedule_job(model, o);
  Ld3Options l;
  l.teacher_sigmas = make_sigmas("karras", 12, model->metadata().schedule, KeyValueArgs(""));
  l.steps = r.steps;
  l.final = FinalStep::None;
  l.train_samples = 8;
  l.valid_samples = 4;
  l.seed = 3;
  l.iterations = 4;
  l.train_batch = 4;
  l.validate_every = 2;
  l.lr = 0.05;
  l.teacher_batch = 4;
  auto heun = make_sampler("heun");
  const Ld3Result want = search_ld3(model, Ld3Student("euler"), *heun, l);
  ASSERT_NE(want.sigmas.back(), 0.0);  // final none: the grid ends at sigma_min, the file adds the 0
  std::vector<double> file_sigmas = want.sigmas;
  file_sigmas.push_back(0.0);
  EXPECT_EQ(r.sigmas, file_sigmas);
  EXPECT_EQ(load_schedule_file(o.out).sigmas, file_sigmas);
  EXPECT_EQ(r.final, FinalStep::None);
  EXPECT_EQ(r.cost, want.valid_loss);
  EXPECT_EQ(r.details.at("best_iteration").get<int>(), want.best_iteration);
}

TEST_F(SearchJob, OptionErrorsNameTheFieldBeforeAnythingIsWritten) {
  auto model = make_builtin(kGaussian);
  const std::string dir = dir_.string();
  jobs::ScheduleSearchOptions o = gits(dir + "/sched.json");
  o.method = "dp";
  testing_jobs::expect_field_error([&] { jobs::search_schedule_job(model, o); }, "method",
                                   "method 'dp' is unknown; valid: gits, ld3");
  o = gits(dir + "/sched.json");
  o.nfe = -1;
  testing_jobs::expect_field_error([&] { jobs::search_schedule_job(model, o); }, "nfe", "give nfe N");
  o = gits(dir + "/sched.json");
  o.final = "none";
  testing_jobs::expect_field_error(
      [&] { jobs::search_schedule_job(model, o); }, "final",
      "final none: GITS grids end in 0 (the candidates' last point); final none is for method ld3");
  o = gits(dir + "/sched.json");
  o.coeff = 0;
  testing_jobs::expect_field_error([&] { jobs::search_schedule_job(model, o); }, "coeff",
                                   "coeff must be positive and finite, got 0");
  o = gits(dir + "/sched.json");
  o.method = "ld3";
  o.final = "denoise";
  testing_jobs::expect_field_error([&] { jobs::search_schedule_job(model, o); }, "final",
                                   "final denoise is not searched by LD3");
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}
