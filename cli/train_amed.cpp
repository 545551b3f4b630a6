// scoreflow train-amed: trains the AMED predictor for one model, grid and student; amed-table:
// writes a table-mode predictor's per-step (r, s, c, a) as JSON.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "cli/common.h"
#include "cli/cond_options.h"
#include "cli/job_flags.h"
#include "io/fsutil.h"
#include "scoreflow/amed.h"
#include "scoreflow/checkpoint.h"
#include "scoreflow/error.h"
#include "scoreflow/npy.h"
#include "scoreflow/schedule_file.h"
#include "scoreflow/sigmas.h"

namespace scoreflow::cli {
namespace {

struct TrainOptions {
  ModelOptions model;
  CondOptions cond;  // conditioned models: trajectory i uses row i mod P (or --cond-rows), with --guidance
  double guidance = 1.0;
  std::string student = "amed", teacher = "heun", out, table, log, schedule, schedule_args;  // schedule "": below
  // The sampling convention trained for and recorded; the paper's by default.
  std::string final = "none";
  // steps -1: 3 intervals (4 with --final zero), or a schedule file's; M -1: 1 for a Heun teacher, 2 otherwise
  // (docs/design.md §4)
  int steps = -1, M = -1, batch = 128;
  int restarts = 1;
  int64_t num_trajectories = 10000, validate = -1;      // validate -1: 1024 with --restarts > 1, else none
  double lr = 5e-3, scale_dir = 0.01, scale_time = -1;  // scale_time -1: 0 for amed, 0.2 for plugins
  uint64_t seed = 0;
  bool afs = false, json = false, overwrite = false, force = false;
};

/// The teacher grid: the same named grid with (M+1)(N−1)+1 points when its points include the
/// student's (karras, polynomial, logsnr, time_uniform, vp_time_uniform), else M log-uniform points per interval.
std::vector<double> teacher_grid(const TrainOptions& o, const std::vector<double>& sigmas,
                                 const NoiseSchedule& schedule) {
  const int intervals = static_cast<int>(sigmas.size()) - (sigmas.back() == 0 ? 2 : 1);
  try {
    std::vector<double> fine =
        make_sigmas(o.schedule, intervals * (o.M + 1) + 1, schedule, KeyValueArgs(o.schedule_args, "schedule arg"));
    fine.pop_back();  // the trailing 0
    bool aligned = true;
    for (int n = 0; n <= intervals; ++n)
      aligned = aligned && std::abs(fine[n * (o.M + 1)] - sigmas[n]) <= 1e-9 * sigmas[n];
    if (aligned) return fine;
  } catch (const Error&) {
  }
  std::fprintf(stderr, "train-amed: grid %s does not nest; teacher points inserted log-uniformly\n",
               o.schedule.c_str());
  return refine_sigmas_log(sigmas, o.M);
}

/// What a restart's result depends on: a folder of finished restarts is reused only for these.
io::Settings restart_settings(const AmedTrainOptions& t, const TrainOptions& o, const Model& model) {
  io::Settings settings = jobs::model_settings(model);
  const io::Settings rest = {{"student", t.student},
                             {"teacher", t.teacher},
                             {"M", std::to_string(t.M)},
                             {"afs", t.afs ? "true" : "false"},
                             {"final", final_step_name(t.final)},
                             {"sigmas", jobs::exact_list(t.sigmas)},
                             {"teacher sigmas", jobs::exact_list(t.teacher_sigmas)},
                             {"trajectories", std::to_string(t.num_trajectories)},
                             {"batch", std::to_string(t.batch)},
                             {"lr", jobs::exact_list({t.lr})},
                             {"scale_dir", jobs::exact_list({t.scale_dir})},
                             {"scale_time", jobs::exact_list({t.scale_time})},
                             {"seed", std::to_string(o.seed)},
                             {"validate", std::to_string(o.validate)}};
  settings.insert(settings.end(), rest.begin(), rest.end());
  if (o.guidance != 1.0 || o.cond.fingerprint() != CondOptions().fingerprint())
    settings.push_back({"conditioning", std::to_string(o.guidance) + "|" + o.cond.fingerprint()});
  return settings;
}

/// One training run of a --restarts job: its seed, loss (summed over the steps) in the first and
/// last batch, and end-to-end RMS against the teacher (-1: not measured).
struct Run {
  uint64_t seed;
  double first_loss, last_loss, validation_rms;
  nlohmann::json validation_json() const {
    return validation_rms < 0 ? nlohmann::json() : nlohmann::json(validation_rms);
  }
  nlohmann::json json() const {
    return {
        {"seed", seed}, {"first_loss", first_loss}, {"last_loss", last_loss}, {"validation_rms", validation_json()}};
  }
};

void train(TrainOptions o) {
  auto start = std::chrono::steady_clock::now();
  check_amed_pair(o.student, o.teacher);
  if (o.M == -1) o.M = o.teacher == "heun" ? 1 : 2;
  if (o.scale_time < 0) o.scale_time = o.student == "amed" ? 0.0 : 0.2;
  // The authors' grids: AMED-Solver on time-uniform steps in (VP) time, the plugins on Karras ρ = 7.
  if (o.schedule.empty()) o.schedule = o.student == "amed" ? "vp_time_uniform" : "karras";
  FinalStep final;
  try {
    final = parse_final_step(o.final);
  } catch (const Error&) {
    fail("--final: unknown value '", o.final, "'; valid: zero, none, denoise");
  }
  // Zero: the last of the steps is σ_min → 0, which AMED does not integrate.
  if (o.steps == -1) {
    const std::string file = schedule_file_path(o.schedule);
    if (file.empty()) {
      o.steps = final == FinalStep::Zero ? 4 : 3;
    } else {
      const ScheduleFile f = load_schedule_file(file);
      o.steps = f.steps() - (final != FinalStep::Zero && f.sigmas.back() == 0.0 ? 1 : 0);
    }
  }
  const int least = final == FinalStep::Zero ? 2 : 1;
  if (o.steps < least || o.steps > 1000)
    fail("--steps must be in [", least, ", 1000] with --final ", o.final,
         " (AMED needs one interval between positive sigmas), got ", o.steps);
  if (o.restarts < 1) fail("--restarts must be >= 1, got ", o.restarts);
  if (o.validate == -1) o.validate = o.restarts > 1 ? 1024 : 0;
  if (o.validate < 0) fail("--validate must be >= 0, got ", o.validate);
  if (o.restarts > 1 && o.validate == 0)
    fail("--restarts ", o.restarts, " keeps the run with the lowest end-to-end error, so it needs --validate N > 0");
  io::check_outputs({{"--out", o.out}, {"--table", o.table}, {"--log", o.log}});
  auto model = o.model.open();
  const NoiseSchedule& schedule = model->metadata().schedule;

  AmedTrainOptions t;
  t.student = o.student;
  t.teacher = o.teacher;
  t.sigmas = grid_sigmas(o.schedule, o.schedule_args, o.steps, o.steps, *model, o.force, final);
  t.final = final;
  t.M = o.M;
  t.teacher_sigmas = teacher_grid(o, t.sigmas, schedule);
  t.afs = o.afs;
  t.num_trajectories = o.num_trajectories;
  t.batch = o.batch;
  t.lr = o.lr;
  t.scale_dir = o.scale_dir;
  t.scale_time = o.scale_time;
  t.seed = o.seed;
  t.schedule_name = o.schedule + (o.schedule_args.empty() ? "" : ":" + o.schedule_args);
  {
    // Conditioning of trajectory i (training and validation count from 0), checked here.
    auto job = std::make_shared<SampleJob>();
    const int64_t total = std::max(o.num_trajectories, o.validate);
    job->seeds.resize(static_cast<size_t>(total));
    job->guidance = o.guidance;
    o.cond.apply(*model, *job, total, 0, total);
    const torch::Device device = model->device();
    t.conditioning = [job, device](int64_t first, int64_t count) {
      return batch_conditioning(*job, first, count, device);
    };
  }
  if (!o.table.empty() && model->has_features())
    fail("--table: model ", model->name(), " exposes bottleneck features, so the predictor is not a per-step table");

  const int intervals = final == FinalStep::Zero ? o.steps - 1 : o.steps;
  const int nfe = 2 * intervals - (o.afs ? 1 : 0) + (final == FinalStep::Denoise ? 1 : 0);
  const int64_t batches = (o.num_trajectories + o.batch - 1) / o.batch;
  const int64_t every = std::max<int64_t>(1, batches / 10);
  // The validation noise is the same for every restart and unlike any training seed's.
  const uint64_t validation_seed = o.seed * 6364136223846793005ULL + 1442695040888963407ULL;
  std::string csv = "seed,batch,step,sigma,sigma_next,loss\n";
  std::vector<Run> runs;
  std::optional<AmedPredictor> best;
  size_t best_run = 0;
  Progress progress("train-amed", batches * intervals * o.restarts, "steps");
  std::fprintf(stderr,
               "train-amed: %s student %s, teacher %s (M=%d), %d steps, final %s (NFE %d%s), %lld trajectories, "
               "batch %d%s\n",
               model->name().c_str(), o.student.c_str(), o.teacher.c_str(), o.M, o.steps, o.final.c_str(), nfe,
               o.afs ? " with AFS" : "", static_cast<long long>(o.num_trajectories), o.batch,
               o.restarts > 1 ? (", " + std::to_string(o.restarts) + " restarts").c_str() : "");
  // With restarts, each finished run is kept in OUT.parts (its per-step losses and end-to-end error
  // as a chunk, its predictor beside it) until the outputs are written, so a killed job resumes.
  std::optional<io::ChunkStore> store;
  if (o.restarts > 1) store.emplace(jobs::chunk_folder(o.out), restart_settings(t, o, *model), o.overwrite, "--out");
  int reused = 0;
  for (int k = 0; k < o.restarts; ++k) {
    t.seed = o.seed + static_cast<uint64_t>(k);
    const std::string prefix = o.restarts > 1 ? "train-amed [seed " + std::to_string(t.seed) + "]" : "train-amed";
    const std::string chunk = "seed-" + std::to_string(t.seed);
    const std::string chunk_pt = store ? store->dir() + "/" + chunk + ".pt" : "";
    std::vector<double> step_loss;  // [batches * intervals], then the end-to-end RMS (-1: not measured)
    std::optional<AmedPredictor> trained;
    if (store) {
      if (std::optional<io::NpyArray> done = store->load(chunk)) {
        torch::Tensor v = io::to_tensor(*done).to(torch::kFloat64).contiguous();
        if (v.numel() == batches * intervals + 1) {
          try {
            trained.emplace(AmedPredictor::load(chunk_pt));
            step_loss.assign(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
            ++reused;
            progress.update((k + 1) * batches * intervals, "reused");
          } catch (const std::exception&) {  // an unreadable predictor: redo the run
          }
        }
      }
    }
    if (!trained) {
      step_loss.assign(batches * intervals, 0.0);
      std::vector<double> batch_sum(batches, 0.0);
      trained.emplace(train_amed(model, t, [&](int64_t bi, int n, double loss) {
        step_loss[bi * intervals + n] = loss;
        batch_sum[bi] += loss;
        progress.update((k * batches + bi) * intervals + n + 1, "loss " + std::to_string(loss));
        if (n == intervals - 1 && (bi % every == 0 || bi == batches - 1))
          std::fprintf(stderr, "%s: batch %lld/%lld  loss (sum over %d steps) %.6g\n", prefix.c_str(),
                       static_cast<long long>(bi + 1), static_cast<long long>(batches), intervals, batch_sum[bi]);
      }));
      double rms = -1;
      if (o.validate > 0) {
        rms = amed_validation_rms(model, t, *trained, o.validate, validation_seed);
        trained->record().validation_rms = rms;
        std::fprintf(stderr, "%s: end-to-end RMS vs the teacher over %lld trajectories: %.6g\n", prefix.c_str(),
                     static_cast<long long>(o.validate), rms);
      }
      step_loss.push_back(rms);
      if (store) {  // the predictor first: a stored chunk means the whole run is there
        io::make_dirs(store->dir());
        trained->save(chunk_pt);
        store->save(chunk, io::from_tensor(torch::tensor(step_loss, torch::kFloat64)));
      }
    }
    AmedPredictor predictor = std::move(*trained);
    std::vector<double> batch_loss(batches, 0.0);
    for (int64_t bi = 0; bi < batches; ++bi)
      for (int n = 0; n < intervals; ++n) {
        const double loss = step_loss[bi * intervals + n];
        batch_loss[bi] += loss;
        char line[200];
        std::snprintf(line, sizeof line, "%llu,%lld,%d,%.17g,%.17g,%.9g\n", static_cast<unsigned long long>(t.seed),
                      static_cast<long long>(bi), n, t.sigmas[n], t.sigmas[n + 1], loss);
        csv += line;
      }
    runs.push_back({t.seed, batch_loss.front(), batch_loss.back(), step_loss.back()});
    const Run& run = runs.back();
    auto score = [](double rms) { return std::isnan(rms) ? HUGE_VAL : rms; };  // a NaN run never wins
    if (!best || score(run.validation_rms) < score(runs[best_run].validation_rms)) {
      best.emplace(std::move(predictor));
      best_run = runs.size() - 1;
    }
  }
  progress.finish();
  if (reused > 0)
    std::fprintf(stderr, "note: resumed the unfinished run in '%s': %d finished restarts reused\n",
                 store->dir().c_str(), reused);
  const AmedPredictor& predictor = *best;
  const Run& kept = runs[best_run];
  if (o.restarts > 1)
    std::fprintf(stderr, "train-amed: kept seed %llu (end-to-end RMS %.6g)\n",
                 static_cast<unsigned long long>(kept.seed), kept.validation_rms);
  predictor.save(o.out);
  if (!o.log.empty()) io::write_file_atomic(o.log, csv);
  if (!o.table.empty()) save_amed_table(o.table, predictor.record(), predictor.table());
  if (store) store->remove();  // every output is written: nothing left to resume
  std::fprintf(stderr, "train-amed: wrote %s (loss %.6g -> %.6g) in %.1fs\n", o.out.c_str(), kept.first_loss,
               kept.last_loss, seconds_since(start));
  if (o.json) {
    const AmedRecord& r = predictor.record();
    nlohmann::json restarts = nlohmann::json::array();
    for (const Run& run : runs) restarts.push_back(run.json());
    print_json({{"command", "train-amed"},
                {"model", model->name()},
                {"student", r.student},
                {"teacher", r.teacher},
                {"steps", r.steps},
                {"final", final_step_name(r.final)},
                {"nfe", nfe},
                {"M", r.M},
                {"afs", r.afs},
                {"features", r.features},
                {"sigmas", r.sigmas},
                {"num_trajectories", o.num_trajectories},
                {"batch", o.batch},
                {"lr", o.lr},
                {"scale_dir", r.scale_dir},
                {"scale_time", r.scale_time},
                {"first_loss", kept.first_loss},
                {"last_loss", kept.last_loss},
                {"seed", kept.seed},
                {"validation_rms", kept.validation_json()},
                {"restarts", restarts},
                {"out", o.out},
                {"table", o.table},
                {"log", o.log},
                {"wall_seconds", seconds_since(start)}});
  }
}

}  // namespace

void register_train_amed(CLI::App& app) {
  auto* sub = app.add_subcommand("train-amed", "train an AMED predictor (Zhou et al. 2024) for a model and sigma grid");
  static TrainOptions o;
  o.model.add(*sub);
  o.cond.add(*sub);
  sub->add_option("--guidance", o.guidance, "classifier-free guidance weight w of teacher and student")
      ->capture_default_str();
  sub->add_option("--student", o.student, "amed (AMED-Solver) or a plugin base: euler, ipndm, dpmpp_2m")
      ->capture_default_str();
  sub->add_option("--teacher", o.teacher, "heun (for amed, euler), ipndm (for ipndm), dpmpp_2m (for dpmpp_2m)")
      ->capture_default_str();
  sub->add_option("--steps", o.steps,
                  "grid steps as in `sample --steps` (NFE 2 steps with --final none, 2(steps-1) with zero; minus 1 "
                  "with --afs; default 3, 4 with --final zero, or the schedule file's)");
  sub->add_option("--final", o.final,
                  "the sampling convention trained for and recorded: none (the paper's: the grid ends at sigma_min), "
                  "denoise (then D(x, sigma_min), +1 NFE) or zero (the grid ends in 0, its last step not taken)")
      ->capture_default_str();
  sub->add_flag("--afs", o.afs, "analytical first step (saves one NFE)");
  sub->add_option("--M", o.M, "teacher points inserted per interval (default 1 for heun, 2 otherwise)");
  sub->add_option("--num-trajectories", o.num_trajectories, "teacher trajectories (fresh noise)")
      ->capture_default_str();
  sub->add_option("--batch", o.batch, "trajectories per batch")->capture_default_str();
  sub->add_option("--lr", o.lr, "Adam learning rate")->capture_default_str();
  sub->add_option("--scale-dir", o.scale_dir, "c in [1 - scale_dir, 1 + scale_dir]")->capture_default_str();
  sub->add_option("--scale-time", o.scale_time,
                  "a in [1 - scale_time, 1 + scale_time] (default 0 for amed, 0.2 for plugins)");
  sub->add_option("--seed", o.seed, "seed for the predictor's initialisation and the training noise")
      ->capture_default_str();
  sub->add_option("--restarts", o.restarts,
                  "train with seeds seed, seed+1, ... and keep the run with the lowest end-to-end error against "
                  "the teacher (training can settle in a poor basin depending on the seed)")
      ->capture_default_str();
  sub->add_option("--validate", o.validate,
                  "fresh trajectories for the end-to-end check: the student solving the whole grid vs the teacher "
                  "(default 1024 with --restarts > 1, else none)");
  sub->add_option("--schedule", o.schedule,
                  "sigma grid (scoreflow list schedules, or file:PATH.json; default vp_time_uniform for amed, "
                  "karras for plugins; sample with the same)");
  sub->add_flag("--force", o.force, kForceHelp);
  sub->add_option("--schedule-args", o.schedule_args, "grid options k=v,...");
  sub->add_option("--out", o.out, "predictor file to write (amed.pt)")->required();
  sub->add_option("--table", o.table, "also write the per-step table as JSON (models without features)");
  sub->add_option("--log", o.log, "CSV of the loss per optimiser step (seed,batch,step,sigma,sigma_next,loss)");
  sub->add_flag("--json", o.json, "print a JSON summary on stdout");
  sub->add_flag("--overwrite", o.overwrite,
                "with --restarts: discard the finished restarts of an unfinished run with other settings (OUT.parts)");
  set_action(sub, [] { train(o); });

  auto* tab = app.add_subcommand("amed-table", "write a table-mode AMED predictor's per-step (r, s, c, a) as JSON");
  static std::string predictor, out;
  tab->add_option("--predictor", predictor, "predictor file from train-amed")->required();
  tab->add_option("--out", out, "JSON table to write")->required();
  set_action(tab, [] {
    io::check_outputs({{"--out", out}});
    AmedPredictor p = AmedPredictor::load(predictor);
    save_amed_table(out, p.record(), p.table());
  });
}

}  // namespace scoreflow::cli
