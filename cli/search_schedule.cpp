// scoreflow search-schedule: a searched σ grid for one model, solver and NFE, written as a schedule
// file (`--schedule file:PATH.json`). The search is the library's (jobs::search_schedule_job over
// samplers/gits.cpp, samplers/ld3.cpp); a killed search resumes from OUT.parts.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/common.h"
#include "cli/sampling_flags.h"
#include "scoreflow/search_job.h"

namespace scoreflow::cli {
namespace {

/// A progress bar per phase of a search ("gits", "teacher", "train"), each started on its first report.
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

void run(jobs::ScheduleSearchOptions o, const SamplingFlags& flags, const ModelOptions& model_options, bool json) {
  const auto start = std::chrono::steady_clock::now();
  auto model = model_options.open();
  // The samples' conditioning: what `sample --seeds` gives its k-th sample (seed + k), checked here.
  std::string note;
  o.conditioning = flags.conditioning(*model, o.sample_seeds(), /*unconditional=*/true, &note);
  if (!note.empty()) std::fprintf(stderr, "note: %s\n", note.c_str());
  o.on_note = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  auto progress = std::make_shared<PhaseProgress>();
  o.on_progress = [progress](const std::string& phase, int64_t done, int64_t total) {
    (*progress)(phase, done, total);
  };
  const jobs::ScheduleSearchResult r = jobs::search_schedule_job(model, o);
  o.on_progress = nullptr;
  progress.reset();  // the last bar ends before the summary
  if (json) {
    nlohmann::json doc = jobs::to_json(r, o);
    doc.update({{"model", model->name()},
                {"cond", flags.cond.cond},
                {"guidance", flags.guidance},
                {"wall_seconds", seconds_since(start)}});
    return print_json(doc);
  }
  const bool none = o.method != "gits" && r.final == FinalStep::None;
  std::printf("%s\nwrote %s (use: --schedule file:%s%s)\n", jobs::search_summary(r, o).c_str(), o.out.c_str(),
              o.out.c_str(), none ? " --final none" : "");
}

}  // namespace

void register_search_schedule(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "search-schedule", "search a sigma grid for one model, solver and NFE (GITS or LD3) and write a schedule file");
  static jobs::ScheduleSearchOptions o;
  static ModelOptions model;
  static SamplingFlags flags;
  static bool json = false;
  model.add(*sub);
  flags.guidance_help = "classifier-free guidance weight w of teacher and student (as sample)";
  flags.add(*sub, SamplingFlags::kConditioning | SamplingFlags::kClass, "", /*cond_outputs=*/false);
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
  sub->add_flag("--json", json, "print a JSON summary on stdout");
  o.out_field = "--out";
  set_action(sub, [] { run(o, flags, model, json); });
}

}  // namespace scoreflow::cli
