// scoreflow search-schedule: a searched σ grid for one model, solver and NFE, written as a schedule
// file (`--schedule file:PATH.json`). The search itself is library code (samplers/gits.cpp).
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "cli/common.h"
#include "io/fsutil.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"
#include "scoreflow/schedule_file.h"
#include "scoreflow/schedule_search.h"
#include "scoreflow/sigmas.h"

namespace scoreflow::cli {
namespace {

struct Options {
  ModelOptions model;
  std::string method = "gits", sampler = "ipndm", sampler_args, teacher = "ipndm:60", grid = "karras", grid_args, out,
              metric = "dev";
  int nfe = -1, batch = 256, teacher_substeps = 1;
  int64_t warmup = 256;
  uint64_t seed = 0;
  double coeff = 1.15;
  bool json = false, student_step = false;
};

std::string shortest(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  for (int digits = 1; digits <= 17; ++digits) {  // the shortest form that reads back as v
    char b[32];
    std::snprintf(b, sizeof b, "%.*g", digits, v);
    if (std::strtod(b, nullptr) == v) return b;
  }
  return buf;
}

void run(const Options& o) {
  auto start = std::chrono::steady_clock::now();
  if (o.method != "gits") fail("--method '", o.method, "' is not available; valid: gits (ld3 is not implemented yet)");
  auto student = make_sampler(o.sampler, o.sampler_args);
  const size_t colon = o.teacher.rfind(':');
  if (colon == std::string::npos || colon == 0) fail("--teacher '", o.teacher, "' must be SAMPLER:STEPS, e.g. heun:60");
  auto teacher = make_sampler(o.teacher.substr(0, colon));
  const std::vector<double> teacher_steps = parse_double_list(o.teacher.substr(colon + 1), "--teacher steps");
  if (teacher_steps.size() != 1 || teacher_steps[0] < 2 || teacher_steps[0] > 1000 ||
      teacher_steps[0] != static_cast<int>(teacher_steps[0]))
    fail("--teacher '", o.teacher, "': STEPS must be one integer in [2, 1000]");
  if (o.nfe < 1) fail("give --nfe N (the student's network-call budget)");
  const GitsMetric metric = parse_gits_metric(o.metric);
  if (!(o.coeff > 0) || !std::isfinite(o.coeff)) fail("--coeff must be positive and finite, got ", o.coeff);
  const int steps = student->steps_for_nfe(o.nfe);
  io::check_writable(o.out);
  auto model = o.model.open();
  GitsOptions g;
  g.candidates = make_sigmas(o.grid, static_cast<int>(teacher_steps[0]), model->metadata().schedule,
                             KeyValueArgs(o.grid_args, "grid arg"));
  g.steps = steps;
  g.warmup = o.warmup;
  g.seed = o.seed;
  g.batch = o.batch;
  g.teacher_substeps = o.teacher_substeps;
  g.metric = metric;
  g.coeff = o.coeff;
  g.student_step = o.student_step;
  std::fprintf(
      stderr,
      "search-schedule: GITS for %s at NFE %d (%d steps) from %zu %s candidates, teacher %s, %lld warm-up samples\n",
      student->name().c_str(), o.nfe, steps, g.candidates.size() - 1, o.grid.c_str(), o.teacher.c_str(),
      static_cast<long long>(o.warmup));
  Progress progress("gits", o.warmup, "samples");
  const GitsResult r = search_gits(model, *student, *teacher, g, [&](int64_t done, int64_t) { progress.update(done); });
  progress.finish();
  ScheduleFile f = schedule_file_for(*model, r.sigmas, "gits");
  f.sampler = student->name() + (o.sampler_args.empty() ? "" : ":" + o.sampler_args);
  f.nfe = student->nfe(steps);
  f.teacher = o.teacher + " on " + o.grid + (o.grid_args.empty() ? "" : ":" + o.grid_args) +
              (o.teacher_substeps > 1 ? " x" + std::to_string(o.teacher_substeps) : "") + ", metric " + o.metric +
              ", coeff " + shortest(o.coeff) + (o.student_step ? ", student steps" : "");
  f.warmup = o.warmup;
  f.seed = o.seed;
  f.cost = r.cost;
  save_schedule_file(o.out, f);
  if (o.json)
    return print_json({{"command", "search-schedule"},
                       {"method", o.method},
                       {"model", model->name()},
                       {"sampler", f.sampler},
                       {"nfe", f.nfe},
                       {"steps", steps},
                       {"sigmas", r.sigmas},
                       {"candidate_indices", r.indices},
                       {"cost", r.cost},
                       {"out", o.out},
                       {"wall_seconds", seconds_since(start)}});
  std::string grid;
  for (double s : r.sigmas) grid += (grid.empty() ? "" : ", ") + std::to_string(s);
  std::printf("%s NFE %lld: sigmas %s (cost %.6g)\nwrote %s (use: --schedule file:%s)\n", f.sampler.c_str(),
              static_cast<long long>(f.nfe), grid.c_str(), r.cost, o.out.c_str(), o.out.c_str());
}

}  // namespace

void register_search_schedule(CLI::App& app) {
  auto* sub = app.add_subcommand("search-schedule",
                                 "search a sigma grid for one model, solver and NFE (GITS) and write a schedule file");
  static Options o;
  o.model.add(*sub);
  sub->add_option("--method", o.method, "gits")->capture_default_str();
  sub->add_option("--sampler", o.sampler, "the student solver the grid is for")->capture_default_str();
  sub->add_option("--sampler-args", o.sampler_args, "its options k=v,...");
  sub->add_option("--nfe", o.nfe, "the student's network-call budget")->required();
  sub->add_option("--teacher", o.teacher, "SAMPLER:STEPS: the teacher and its fine grid, the candidate points")
      ->capture_default_str();
  sub->add_option("--grid", o.grid, "the candidate grid's kind (scoreflow list schedules)")->capture_default_str();
  sub->add_option("--grid-args", o.grid_args, "its options k=v,...");
  sub->add_option("--teacher-substeps", o.teacher_substeps, "teacher steps per candidate interval")
      ->capture_default_str();
  sub->add_option("--metric", o.metric, "step cost: dev (trajectory deviation), l2 or l1")->capture_default_str();
  sub->add_option("--coeff", o.coeff, "DP weight on the rest of the path (1 = plain sum)")->capture_default_str();
  sub->add_flag("--student-step", o.student_step,
                "cost the student's own first step instead of an Euler step with the teacher's derivative");
  sub->add_option("--warmup", o.warmup, "warm-up samples (teacher trajectories)")->capture_default_str();
  sub->add_option("--seed", o.seed, "first seed of the warm-up noise")->capture_default_str();
  sub->add_option("--batch", o.batch, "samples per denoiser call")->capture_default_str();
  sub->add_option("--out", o.out, "schedule file to write (sched.json)")->required();
  sub->add_flag("--json", o.json, "print a JSON summary on stdout");
  set_action(sub, [] { run(o); });
}

}  // namespace scoreflow::cli
