// scoreflow search-schedule: a searched σ grid for one model, solver and NFE, written as a schedule
// file (`--schedule file:PATH.json`). The searches are library code (samplers/gits.cpp, samplers/ld3.cpp);
// a killed search resumes from OUT.parts (the job layer's chunk store).
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <sstream>
#include <utility>

#include "cli/common.h"
#include "cli/cond_options.h"
#include "cli/job_flags.h"
#include "io/fsutil.h"
#include "scoreflow/error.h"
#include "scoreflow/jobs.h"
#include "scoreflow/ld3.h"
#include "scoreflow/registry.h"
#include "scoreflow/schedule_file.h"
#include "scoreflow/schedule_search.h"
#include "scoreflow/sigmas.h"

namespace scoreflow::cli {
namespace {

/// A weight as a person writes it (1.15, not the exact 1.1499999999999999), for the file's description.
std::string readable(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

struct Options {
  ModelOptions model;
  CondOptions cond;
  std::string label;  // --class
  double guidance = 1.0;
  std::string method = "gits", sampler = "ipndm", sampler_args, teacher = "ipndm:60", grid = "karras", grid_args, out,
              metric = "dev";
  std::string final;
  double coeff = 1.15;
  bool student_step = false;
  int nfe = -1, batch = 256, teacher_substeps = 1;
  int64_t warmup = 256, valid = 64;
  uint64_t seed = 0;
  int iterations = 200, train_batch = 16, validate_every = 10;
  double lr = 0.02, ball = -1, shift_lr = -1;
  bool json = false, overwrite = false;
};

/// The teacher of --teacher SAMPLER:STEPS and its step count.
std::pair<std::unique_ptr<Sampler>, int> parse_teacher(const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) fail("--teacher '", text, "' must be SAMPLER:STEPS, e.g. heun:60");
  auto teacher = make_sampler(text.substr(0, colon));
  const std::vector<double> steps = parse_double_list(text.substr(colon + 1), "--teacher steps");
  if (steps.size() != 1 || steps[0] < 2 || steps[0] > 1000 || steps[0] != static_cast<int>(steps[0]))
    fail("--teacher '", text, "': STEPS must be one integer in [2, 1000]");
  return {std::move(teacher), static_cast<int>(steps[0])};
}

/// A progress bar per phase of a search ("teacher", "train", ...), each started on its first report.
class PhaseProgress {
 public:
  void operator()(const std::string& phase, int64_t done, int64_t total) {
    if (phase != phase_) {
      if (bar_) bar_->finish();
      bar_ = std::make_unique<Progress>(phase, total, phase == "train" ? "steps" : "samples");
      phase_ = phase;
    }
    bar_->update(done);
  }
  ~PhaseProgress() {
    if (bar_) bar_->finish();
  }

 private:
  std::string phase_;
  std::unique_ptr<Progress> bar_;
};

/// The conditioning of `n` search samples (seeds seed, seed + 1, …): what `sample --seeds` gives its
/// k-th sample, checked here. A conditional model without --cond uses its unconditional input.
SampleJob search_conditioning(const Options& o, const Model& model, int64_t n) {
  SampleJob job;
  for (int64_t k = 0; k < n; ++k) job.seeds.push_back(o.seed + static_cast<uint64_t>(k));
  job.guidance = o.guidance;
  job.labels = class_labels(o.label, model, job.seeds);
  if (o.cond.cond.empty()) {
    const std::string note = use_unconditional_input(
        model, job,
        o.cond.uncond.empty() ? std::map<std::string, torch::Tensor>{} : read_arrays(o.cond.uncond, "uncond"));
    if (!note.empty()) std::fprintf(stderr, "note: %s\n", note.c_str());
  }
  o.cond.apply(model, job, n, 0, n);
  return job;
}

/// The schedule file's record of the samples' conditioning (nothing for an unconditional search).
void record_conditioning(ScheduleFile& f, const SampleJob& job) {
  const io::Settings c = jobs::search_conditioning_settings(job);
  f.settings.insert(f.settings.end(), c.begin(), c.end());
}

/// The --json summary: what both methods report, with `extra`.
void print_summary(const Options& o, const Model& model, const ScheduleFile& f, int steps,
                   const std::vector<double>& sigmas, const nlohmann::json& extra,
                   std::chrono::steady_clock::time_point start) {
  nlohmann::json doc = {{"command", "search-schedule"},
                        {"method", o.method},
                        {"model", model.name()},
                        {"sampler", f.sampler},
                        {"nfe", f.nfe},
                        {"steps", steps},
                        {"sigmas", sigmas},
                        {"cond", o.cond.cond},
                        {"guidance", o.guidance},
                        {"out", o.out}};
  doc.update(extra);
  doc["wall_seconds"] = seconds_since(start);
  print_json(doc);
}

std::string grid_text(const std::vector<double>& sigmas) {
  std::string out;
  for (double s : sigmas) out += (out.empty() ? "" : ", ") + std::to_string(s);
  return out;
}

void run_gits(const Options& o, std::chrono::steady_clock::time_point start) {
  if (!o.final.empty() && parse_final_step(o.final) != FinalStep::Zero)
    fail("--final ", o.final, ": GITS grids end in 0 (the candidates' last point); --final none is for --method ld3");
  auto student = make_sampler(o.sampler, o.sampler_args);
  auto [teacher, teacher_steps] = parse_teacher(o.teacher);
  if (o.nfe < 1) fail("give --nfe N (the student's network-call budget)");
  const GitsMetric metric = parse_gits_metric(o.metric);
  if (!(o.coeff > 0) || !std::isfinite(o.coeff)) fail("--coeff must be positive and finite, got ", o.coeff);
  const int steps = student->steps_for_nfe(o.nfe);
  io::check_writable(o.out);
  auto model = o.model.open();
  GitsOptions g;
  g.candidates = make_sigmas(o.grid, teacher_steps, model->metadata().schedule, KeyValueArgs(o.grid_args, "grid arg"));
  g.steps = steps;
  g.warmup = o.warmup;
  g.seed = o.seed;
  g.batch = o.batch;
  g.teacher_substeps = o.teacher_substeps;
  g.metric = metric;
  g.coeff = o.coeff;
  g.student_step = o.student_step;
  g.conditioning = search_conditioning(o, *model, o.warmup);
  // Finished warm-up batches are kept in OUT.parts: the same command after a kill continues.
  io::ChunkStore store(jobs::chunk_folder(o.out), jobs::gits_settings(*model, *student, o.sampler_args, *teacher, g),
                       o.overwrite, "--out");
  std::fprintf(
      stderr,
      "search-schedule: GITS for %s at NFE %d (%d steps) from %zu %s candidates, teacher %s, %lld warm-up samples\n",
      student->name().c_str(), o.nfe, steps, g.candidates.size() - 1, o.grid.c_str(), o.teacher.c_str(),
      static_cast<long long>(o.warmup));
  Progress progress("gits", o.warmup, "samples");
  const GitsResult r = search_gits(
      model, *student, *teacher, g, [&](int64_t done, int64_t) { progress.update(done); }, store.memo());
  progress.finish();
  note_resumed(&store);
  ScheduleFile f = schedule_file_for(*model, r.sigmas, "gits");
  f.sampler = student->name() + (o.sampler_args.empty() ? "" : ":" + o.sampler_args);
  f.nfe = student->nfe(steps);
  f.teacher = o.teacher + " on " + o.grid + (o.grid_args.empty() ? "" : ":" + o.grid_args) +
              (o.teacher_substeps > 1 ? " x" + std::to_string(o.teacher_substeps) : "") + ", metric " + o.metric +
              ", coeff " + readable(o.coeff) + (o.student_step ? ", student steps" : "");
  f.warmup = o.warmup;
  f.seed = o.seed;
  f.cost = r.cost;
  record_conditioning(f, g.conditioning);
  save_schedule_file(o.out, f);
  store.remove();  // the file is written: nothing left to resume
  if (o.json)
    return print_summary(o, *model, f, steps, r.sigmas,
                         {{"candidate_indices", r.indices}, {"cost", r.cost}, {"resumed_batches", store.loaded()}},
                         start);
  std::printf("%s NFE %lld: sigmas %s (cost %.6g)\nwrote %s (use: --schedule file:%s)\n", f.sampler.c_str(),
              static_cast<long long>(f.nfe), grid_text(r.sigmas).c_str(), r.cost, o.out.c_str(), o.out.c_str());
}

void run_ld3(const Options& o, std::chrono::steady_clock::time_point start) {
  const FinalStep final = o.final.empty() ? FinalStep::Zero : parse_final_step(o.final);
  if (final == FinalStep::Denoise) fail("--final denoise is not searched by LD3; valid: zero, none");
  const Ld3Student student(o.sampler, o.sampler_args);
  auto [teacher, teacher_steps] = parse_teacher(o.teacher);
  if (o.nfe < 1) fail("give --nfe N (the student's network-call budget)");
  const int steps = student.sampler().steps_for_nfe(o.nfe, final);
  io::check_writable(o.out);
  auto model = o.model.open();
  Ld3Options l;
  l.teacher_sigmas =
      make_sigmas(o.grid, teacher_steps, model->metadata().schedule, KeyValueArgs(o.grid_args, "grid arg"));
  l.steps = steps;
  l.final = final;
  l.train_samples = o.warmup;
  l.valid_samples = o.valid;
  l.seed = o.seed;
  l.iterations = o.iterations;
  l.train_batch = o.train_batch;
  l.lr = o.lr;
  l.ball = o.ball;
  l.shift_lr = o.shift_lr;
  l.validate_every = o.validate_every;
  l.teacher_batch = o.batch;
  l.conditioning = search_conditioning(o, *model, o.warmup + o.valid);  // training, then validation seeds
  // Teacher blocks and checkpoints (every --validate-every steps) are kept in OUT.parts.
  io::ChunkStore store(jobs::chunk_folder(o.out), jobs::ld3_settings(*model, student, *teacher, l), o.overwrite,
                       "--out");
  std::fprintf(stderr,
               "search-schedule: LD3 for %s at NFE %d (%d steps, final %s), teacher %s on %s, %lld training + %lld "
               "validation samples, %d Adam steps\n",
               student.sampler().name().c_str(), o.nfe, steps, final_step_name(final).c_str(), o.teacher.c_str(),
               o.grid.c_str(), static_cast<long long>(o.warmup), static_cast<long long>(o.valid), o.iterations);
  Ld3Result r;
  {
    PhaseProgress progress;
    r = search_ld3(model, student, *teacher, l, store.memo(), std::ref(progress));
  }
  note_resumed(&store);
  // Files end in 0 (as GITS files); a grid learned for final none ends at σ_min before it, and
  // `--final none` drops that 0 again when the file is used.
  std::vector<double> sigmas = r.sigmas;
  if (sigmas.back() != 0) sigmas.push_back(0.0);
  ScheduleFile f = schedule_file_for(*model, sigmas, "ld3");
  f.sampler = student.sampler().name() + (o.sampler_args.empty() ? "" : ":" + o.sampler_args);
  f.nfe = student.sampler().nfe_for(steps, final);
  f.teacher = o.teacher + " on " + o.grid + (o.grid_args.empty() ? "" : ":" + o.grid_args);
  f.warmup = o.warmup;
  f.seed = o.seed;
  f.cost = r.valid_loss;
  using jobs::exact;
  f.settings = {{"final", final_step_name(final)},
                {"valid", std::to_string(o.valid)},
                {"iterations", std::to_string(o.iterations)},
                {"train_batch", std::to_string(o.train_batch)},
                {"lr", exact(o.lr)},
                {"ball", exact(o.ball)},
                {"shift_lr", exact(o.shift_lr)},
                {"validate_every", std::to_string(o.validate_every)},
                {"best_iteration", std::to_string(r.best_iteration)},
                {"initial_valid_loss", exact(r.initial_valid_loss)}};
  record_conditioning(f, l.conditioning);
  save_schedule_file(o.out, f);
  store.remove();  // the file is written: nothing left to resume
  if (o.json)
    return print_summary(o, *model, f, steps, sigmas,
                         {{"final", final_step_name(final)},
                          {"initial_sigmas", r.initial_sigmas},
                          {"valid_loss", r.valid_loss},
                          {"initial_valid_loss", r.initial_valid_loss},
                          {"best_iteration", r.best_iteration},
                          {"resumed_chunks", r.resumed}},
                         start);
  std::printf(
      "%s NFE %lld: sigmas %s (validation loss %.6g, initial %.6g, best at step %d)\nwrote %s (use: "
      "--schedule file:%s%s)\n",
      f.sampler.c_str(), static_cast<long long>(f.nfe), grid_text(sigmas).c_str(), r.valid_loss, r.initial_valid_loss,
      r.best_iteration, o.out.c_str(), o.out.c_str(), final == FinalStep::None ? " --final none" : "");
}

void run(const Options& o) {
  auto start = std::chrono::steady_clock::now();
  if (o.method == "gits") return run_gits(o, start);
  if (o.method == "ld3") return run_ld3(o, start);
  fail("--method '", o.method, "' is unknown; valid: gits, ld3");
}

}  // namespace

void register_search_schedule(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "search-schedule", "search a sigma grid for one model, solver and NFE (GITS or LD3) and write a schedule file");
  static Options o;
  o.model.add(*sub);
  o.cond.add(*sub, /*outputs=*/false);
  sub->add_option("--class", o.label, "class label for every warm-up sample, or 'random' (seed mod num_classes)");
  sub->add_option("--guidance", o.guidance, "classifier-free guidance weight w of teacher and student (as sample)")
      ->capture_default_str();
  sub->add_option("--method", o.method, "gits | ld3")->capture_default_str();
  sub->add_option("--sampler", o.sampler, "the student solver the grid is for (ld3: euler, ipndm, dpmpp_2m, unipc)")
      ->capture_default_str();
  sub->add_option("--sampler-args", o.sampler_args, "its options k=v,...");
  sub->add_option("--nfe", o.nfe, "the student's network-call budget")->required();
  sub->add_option("--teacher", o.teacher,
                  "SAMPLER:STEPS: the teacher and its fine grid (gits: the candidate points; ld3: the targets)")
      ->capture_default_str();
  sub->add_option("--grid", o.grid, "the teacher grid's kind (scoreflow list schedules)")->capture_default_str();
  sub->add_option("--grid-args", o.grid_args, "its options k=v,...");
  sub->add_option("--teacher-substeps", o.teacher_substeps, "gits: teacher steps per candidate interval")
      ->capture_default_str();
  sub->add_option("--metric", o.metric, "gits: step cost: dev (trajectory deviation), l2 or l1")->capture_default_str();
  sub->add_option("--coeff", o.coeff, "gits: DP weight on the rest of the path (1 = plain sum)")->capture_default_str();
  sub->add_flag("--student-step", o.student_step,
                "gits: cost the student's own first step instead of an Euler step with the teacher's derivative");
  sub->add_option("--warmup", o.warmup, "warm-up samples (gits: teacher trajectories; ld3: training samples)")
      ->capture_default_str();
  sub->add_option("--seed", o.seed, "first seed of the warm-up noise (ld3: validation seeds follow)")
      ->capture_default_str();
  sub->add_option("--batch", o.batch, "samples per denoiser call (teacher; ld3 validation)")->capture_default_str();
  sub->add_option("--final", o.final, "ld3: zero (grid ends in 0, default) | none (ends at sigma_min)");
  sub->add_option("--valid", o.valid, "ld3: validation samples (the best grid on them is kept)")->capture_default_str();
  sub->add_option("--iterations", o.iterations, "ld3: Adam steps")->capture_default_str();
  sub->add_option("--train-batch", o.train_batch, "ld3: training samples per Adam step")->capture_default_str();
  sub->add_option("--lr", o.lr, "ld3: Adam learning rate on the grid parameters")->capture_default_str();
  sub->add_option("--ball", o.ball, "ld3: radius r of the relaxed objective (-1: the paper's 0.001*d/N^2; 0: off)")
      ->capture_default_str();
  sub->add_option("--shift-lr", o.shift_lr, "ld3: step size of the noise moves (-1: the paper's 12/N)")
      ->capture_default_str();
  sub->add_option("--validate-every", o.validate_every, "ld3: validate (and checkpoint) every this many steps")
      ->capture_default_str();
  sub->add_option("--out", o.out, "schedule file to write (sched.json); unfinished work is kept in OUT.parts")
      ->required();
  sub->add_flag("--overwrite", o.overwrite, "discard an unfinished search with other settings (OUT.parts)");
  sub->add_flag("--json", o.json, "print a JSON summary on stdout");
  set_action(sub, [] { run(o); });
}

}  // namespace scoreflow::cli
