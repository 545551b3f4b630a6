// train-amed as a library call (scoreflow/amed_job.h): grids, restarts kept in a chunk store, files.
#include <cmath>
#include <cstdarg>
#include <cstdio>

#include "io/fsutil.h"
#include "scoreflow/amed_job.h"
#include "scoreflow/error.h"
#include "scoreflow/jobs.h"
#include "scoreflow/schedule_file.h"
#include "scoreflow/sigmas.h"

namespace scoreflow::jobs {
namespace {

std::string format(const char* fmt, ...) {
  char line[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(line, sizeof line, fmt, args);
  va_end(args);
  return line;
}

/// The options with their defaults filled in and checked (before the model is used).
AmedJobOptions resolved(AmedJobOptions o) {
  check_amed_pair(o.student, o.teacher);
  if (o.M == -1) o.M = o.teacher == "heun" ? 1 : 2;
  if (o.scale_time < 0) o.scale_time = o.student == "amed" ? 0.0 : 0.2;
  // The authors' grids: AMED-Solver on time-uniform steps in (VP) time, the plugins on Karras ρ = 7.
  if (o.schedule.empty()) o.schedule = o.student == "amed" ? "vp_time_uniform" : "karras";
  // Zero: the last of the steps is σ_min → 0, which AMED does not integrate.
  if (o.steps == -1) {
    const std::string file = schedule_file_path(o.schedule);
    if (file.empty()) {
      o.steps = o.final == FinalStep::Zero ? 4 : 3;
    } else {
      const ScheduleFile f = load_schedule_file(file);
      o.steps = f.steps() - (o.final != FinalStep::Zero && f.sigmas.back() == 0.0 ? 1 : 0);
    }
  }
  const int least = o.final == FinalStep::Zero ? 2 : 1;
  if (o.steps < least || o.steps > 1000)
    fail(Field{"steps"}, " must be in [", least, ", 1000] with ", Field{"final"}, " ", final_step_name(o.final),
         " (AMED needs one interval between positive sigmas), got ", o.steps);
  o.check();
  o.validate = o.validation();
  return o;
}

}  // namespace

void AmedJobOptions::check() const {
  if (restarts < 1) fail(Field{"restarts"}, " must be >= 1, got ", restarts);
  if (validation() < 0) fail(Field{"validate"}, " must be >= 0, got ", validation());
  if (restarts > 1 && validation() == 0)
    fail(Field{"restarts"}, " ", restarts, " keeps the run with the lowest end-to-end error, so it needs ",
         Field{"validate"}, " N > 0");
  io::check_outputs({{out_field, out}, {"table", table}, {"log", log}});
}

std::vector<double> amed_teacher_grid(const std::string& schedule, const std::string& schedule_args, int M,
                                      const std::vector<double>& sigmas, const NoiseSchedule& noise, bool* nested) {
  const int intervals = static_cast<int>(sigmas.size()) - (sigmas.back() == 0 ? 2 : 1);
  if (nested) *nested = true;
  try {
    std::vector<double> fine =
        make_sigmas(schedule, intervals * (M + 1) + 1, noise, KeyValueArgs(schedule_args, "schedule arg"));
    fine.pop_back();  // the trailing 0
    bool aligned = true;
    for (int n = 0; n <= intervals; ++n)
      aligned = aligned && std::abs(fine[n * (M + 1)] - sigmas[n]) <= 1e-9 * sigmas[n];
    if (aligned) return fine;
  } catch (const Error&) {
  }
  if (nested) *nested = false;
  return refine_sigmas_log(sigmas, M);
}

io::Settings amed_restart_settings(const Model& model, const AmedTrainOptions& t, const AmedJobOptions& o) {
  io::Settings settings = model_settings(model);
  const io::Settings rest = {{"student", t.student},
                             {"teacher", t.teacher},
                             {"M", std::to_string(t.M)},
                             {"afs", t.afs ? "true" : "false"},
                             {"final", final_step_name(t.final)},
                             {"sigmas", exact_list(t.sigmas)},
                             {"teacher sigmas", exact_list(t.teacher_sigmas)},
                             {"trajectories", std::to_string(t.num_trajectories)},
                             {"batch", std::to_string(t.batch)},
                             {"lr", exact_list({t.lr})},
                             {"scale_dir", exact_list({t.scale_dir})},
                             {"scale_time", exact_list({t.scale_time})},
                             {"seed", std::to_string(o.seed)},
                             {"validate", std::to_string(o.validation())}};
  settings.insert(settings.end(), rest.begin(), rest.end());
  // The trajectories' conditioning by content (nothing for an unconditioned job with guidance 1).
  const io::Settings conditioning = search_conditioning_settings(o.conditioning);
  settings.insert(settings.end(), conditioning.begin(), conditioning.end());
  return settings;
}

AmedJobResult train_amed_job(std::shared_ptr<const Model> model, const AmedJobOptions& options) {
  const AmedJobOptions o = resolved(options);
  auto note = [&](const std::string& line) {
    if (o.on_note) o.on_note(line);
  };
  AmedJobResult result;
  AmedTrainOptions& t = result.train;
  t.student = o.student;
  t.teacher = o.teacher;
  try {
    t.sigmas = resolve_sigmas(o.schedule, o.steps, o.steps, *model, KeyValueArgs(o.schedule_args, "schedule arg"),
                              o.force, o.final);
  } catch (const ScheduleMismatch& e) {
    fail(e.what(), " (", Field{"force"}, " uses it anyway)");
  }
  t.final = o.final;
  t.M = o.M;
  bool nested = true;
  t.teacher_sigmas = amed_teacher_grid(o.schedule, o.schedule_args, o.M, t.sigmas, model->metadata().schedule, &nested);
  if (!nested) note(o.label + ": grid " + o.schedule + " does not nest; teacher points inserted log-uniformly");
  t.afs = o.afs;
  t.num_trajectories = o.num_trajectories;
  t.batch = o.batch;
  t.lr = o.lr;
  t.scale_dir = o.scale_dir;
  t.scale_time = o.scale_time;
  t.seed = o.seed;
  t.schedule_name = o.schedule + (o.schedule_args.empty() ? "" : ":" + o.schedule_args);
  {
    // Trajectory i (training and validation count from 0) takes the job's sample i's conditioning.
    auto job = std::make_shared<SampleJob>(o.conditioning);
    const torch::Device device = model->device();
    t.conditioning = [job, device](int64_t first, int64_t count) {
      return batch_conditioning(*job, first, count, device);
    };
  }
  if (!o.table.empty() && model->has_features())
    fail(Field{"table"}, ": model ", model->name(),
         " exposes bottleneck features, so the predictor is not a per-step table");

  const int intervals = o.final == FinalStep::Zero ? o.steps - 1 : o.steps;
  result.steps = o.steps;
  result.nfe = 2 * intervals - (o.afs ? 1 : 0) + (o.final == FinalStep::Denoise ? 1 : 0);
  const int64_t batches = (o.num_trajectories + o.batch - 1) / o.batch;
  const int64_t every = std::max<int64_t>(1, batches / 10);
  const int64_t total_steps = batches * intervals * o.restarts;
  auto progress = [&](int64_t done, const std::string& extra) {
    if (o.on_progress) o.on_progress(done, total_steps, extra);
  };
  // The validation noise is the same for every restart and unlike any training seed's.
  const uint64_t validation_seed = o.seed * 6364136223846793005ULL + 1442695040888963407ULL;
  std::string csv = "seed,batch,step,sigma,sigma_next,loss\n";
  note(format("%s: %s student %s, teacher %s (M=%d), %d steps, final %s (NFE %d%s), %lld trajectories, batch %d%s",
              o.label.c_str(), model->name().c_str(), o.student.c_str(), o.teacher.c_str(), o.M, o.steps,
              final_step_name(o.final).c_str(), result.nfe, o.afs ? " with AFS" : "",
              static_cast<long long>(o.num_trajectories), o.batch,
              o.restarts > 1 ? (", " + std::to_string(o.restarts) + " restarts").c_str() : ""));
  // With restarts, each finished run is kept in OUT.parts (its per-step losses and end-to-end error
  // as a chunk, its predictor beside it) until the outputs are written, so a killed job resumes.
  std::optional<io::ChunkStore> store;
  if (o.restarts > 1) store.emplace(chunk_folder(o.out), amed_restart_settings(*model, t, o), o.overwrite, o.out_field);
  for (int k = 0; k < o.restarts; ++k) {
    t.seed = o.seed + static_cast<uint64_t>(k);
    const std::string prefix = o.restarts > 1 ? o.label + " [seed " + std::to_string(t.seed) + "]" : o.label;
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
            ++result.reused;
            progress((k + 1) * batches * intervals, "reused");
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
        progress((k * batches + bi) * intervals + n + 1, "loss " + std::to_string(loss));
        if (n == intervals - 1 && (bi % every == 0 || bi == batches - 1))
          note(format("%s: batch %lld/%lld  loss (sum over %d steps) %.6g", prefix.c_str(),
                      static_cast<long long>(bi + 1), static_cast<long long>(batches), intervals, batch_sum[bi]));
      }));
      double rms = -1;
      if (o.validate > 0) {
        rms = amed_validation_rms(model, t, *trained, o.validate, validation_seed);
        trained->record().validation_rms = rms;
        note(format("%s: end-to-end RMS vs the teacher over %lld trajectories: %.6g", prefix.c_str(),
                    static_cast<long long>(o.validate), rms));
      }
      step_loss.push_back(rms);
      if (store) {  // the predictor first: a stored chunk means the whole run is there
        io::make_dirs(store->dir());
        trained->save(chunk_pt);
        store->save(chunk, io::from_tensor(torch::tensor(step_loss, torch::kFloat64)));
      }
    }
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
    result.runs.push_back({t.seed, batch_loss.front(), batch_loss.back(), step_loss.back()});
    auto score = [](double rms) { return std::isnan(rms) ? HUGE_VAL : rms; };  // a NaN run never wins
    if (!result.predictor ||
        score(result.runs.back().validation_rms) < score(result.runs[result.kept].validation_rms)) {
      result.predictor = std::make_shared<AmedPredictor>(std::move(*trained));
      result.kept = result.runs.size() - 1;
    }
  }
  if (result.reused > 0)
    note(format("note: resumed the unfinished run in '%s': %d finished restarts reused", store->dir().c_str(),
                result.reused));
  const AmedRun& kept = result.runs[result.kept];
  t.seed = kept.seed;
  if (o.restarts > 1)
    note(format("%s: kept seed %llu (end-to-end RMS %.6g)", o.label.c_str(), static_cast<unsigned long long>(kept.seed),
                kept.validation_rms));
  const AmedPredictor& predictor = *result.predictor;
  predictor.save(o.out);
  if (!o.log.empty()) io::write_file_atomic(o.log, csv);
  if (!o.table.empty()) save_amed_table(o.table, predictor.record(), predictor.table());
  if (store) store->remove();  // every output is written: nothing left to resume
  return result;
}

void write_amed_table(const std::string& predictor, const std::string& out, const std::string& out_field) {
  io::check_outputs({{out_field, out}});
  const AmedPredictor p = AmedPredictor::load(predictor);
  save_amed_table(out, p.record(), p.table());
}

nlohmann::json to_json(const AmedJobResult& r, const AmedJobOptions& o) {
  auto rms = [](double v) { return v < 0 ? nlohmann::json() : nlohmann::json(v); };  // -1: not measured
  const AmedRecord& rec = r.predictor->record();
  const AmedRun& kept = r.runs[r.kept];
  nlohmann::json restarts = nlohmann::json::array();
  for (const AmedRun& run : r.runs)
    restarts.push_back({{"seed", run.seed},
                        {"first_loss", run.first_loss},
                        {"last_loss", run.last_loss},
                        {"validation_rms", rms(run.validation_rms)}});
  return {{"command", "train-amed"},
          {"student", rec.student},
          {"teacher", rec.teacher},
          {"steps", rec.steps},
          {"final", final_step_name(rec.final)},
          {"nfe", r.nfe},
          {"M", rec.M},
          {"afs", rec.afs},
          {"features", rec.features},
          {"sigmas", rec.sigmas},
          {"num_trajectories", o.num_trajectories},
          {"batch", o.batch},
          {"lr", o.lr},
          {"scale_dir", rec.scale_dir},
          {"scale_time", rec.scale_time},
          {"first_loss", kept.first_loss},
          {"last_loss", kept.last_loss},
          {"seed", kept.seed},
          {"validation_rms", rms(kept.validation_rms)},
          {"restarts", restarts},
          {"out", o.out},
          {"table", o.table},
          {"log", o.log}};
}

}  // namespace scoreflow::jobs
