// What identifies a schedule search's run (its resume manifest): include/scoreflow/jobs.h; the
// search as one call (scoreflow/search_job.h): GITS or LD3 over the chunk store, the schedule file.
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>

#include "io/fsutil.h"
#include "scoreflow/args.h"
#include "scoreflow/error.h"
#include "scoreflow/jobs.h"
#include "scoreflow/registry.h"
#include "scoreflow/search_job.h"
#include "scoreflow/sigmas.h"

namespace scoreflow::jobs {
namespace {

std::string named(const std::string& name, const std::string& args) { return args.empty() ? name : name + ":" + args; }

/// "N entries, fnv1a64:…" of an integer list, in order.
std::string list_fingerprint(const std::vector<int64_t>& values) {
  std::string text;
  for (int64_t v : values) text += std::to_string(v) + ",";
  return std::to_string(values.size()) + " entries, " + io::hash_text(text);
}

/// A weight as a person writes it (1.15, not the exact 1.1499999999999999), for the file's description.
std::string readable(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

/// "note: resumed the unfinished run in 'DIR': N finished chunks reused" when the store loaded any.
void note_loaded(const ScheduleSearchOptions& o, const io::ChunkStore& store) {
  if (store.loaded() > 0 && o.on_note)
    o.on_note("note: resumed the unfinished run in '" + store.dir() + "': " + std::to_string(store.loaded()) +
              " finished chunks reused");
}

void require_nfe(const ScheduleSearchOptions& o) {
  if (o.nfe < 1) fail("give ", Field{"nfe"}, " N (the student's network-call budget)");
}

/// The schedule file's record of the samples' conditioning (nothing for an unconditional search).
void record_conditioning(ScheduleFile& f, const SampleJob& job) {
  const io::Settings c = search_conditioning_settings(job);
  f.settings.insert(f.settings.end(), c.begin(), c.end());
}

ScheduleSearchResult run_gits(std::shared_ptr<const Model> model, const ScheduleSearchOptions& o) {
  if (!o.final.empty() && parse_final_step(o.final) != FinalStep::Zero)
    fail(Field{"final"}, " ", o.final, ": GITS grids end in 0 (the candidates' last point); ", Field{"final"},
         " none is for ", Field{"method"}, " ld3");
  auto student = make_sampler(o.sampler, o.sampler_args);
  auto [teacher, teacher_steps] = parse_teacher(o.teacher);
  require_nfe(o);
  const GitsMetric metric = parse_gits_metric(o.metric);
  if (!(o.coeff > 0) || !std::isfinite(o.coeff)) fail(Field{"coeff"}, " must be positive and finite, got ", o.coeff);
  ScheduleSearchResult result;
  const int steps = result.steps = student->steps_for_nfe(o.nfe);
  io::check_writable(o.out);
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
  g.conditioning = o.conditioning;
  // Finished warm-up batches are kept in OUT.parts: the same call after a kill continues.
  io::ChunkStore store(chunk_folder(o.out), gits_settings(*model, *student, o.sampler_args, *teacher, g), o.overwrite,
                       o.out_field);
  if (o.on_note)
    o.on_note("search-schedule: GITS for " + student->name() + " at NFE " + std::to_string(o.nfe) + " (" +
              std::to_string(steps) + " steps) from " + std::to_string(g.candidates.size() - 1) + " " + o.grid +
              " candidates, teacher " + o.teacher + ", " + std::to_string(o.warmup) + " warm-up samples");
  const GitsResult r = search_gits(
      model, *student, *teacher, g,
      [&](int64_t done, int64_t total) {
        if (o.on_progress) o.on_progress("gits", done, total);
      },
      store.memo());
  note_loaded(o, store);
  ScheduleFile& f = result.file = schedule_file_for(*model, r.sigmas, "gits");
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
  result.sigmas = r.sigmas;
  result.cost = r.cost;
  result.details = {{"candidate_indices", r.indices}, {"cost", r.cost}, {"resumed_batches", store.loaded()}};
  return result;
}

ScheduleSearchResult run_ld3(std::shared_ptr<const Model> model, const ScheduleSearchOptions& o) {
  ScheduleSearchResult result;
  const FinalStep final = result.final = o.final.empty() ? FinalStep::Zero : parse_final_step(o.final);
  if (final == FinalStep::Denoise) fail(Field{"final"}, " denoise is not searched by LD3; valid: zero, none");
  const Ld3Student student(o.sampler, o.sampler_args);
  auto [teacher, teacher_steps] = parse_teacher(o.teacher);
  require_nfe(o);
  const int steps = result.steps = student.sampler().steps_for_nfe(o.nfe, final);
  io::check_writable(o.out);
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
  l.conditioning = o.conditioning;  // training, then validation seeds
  // Teacher blocks and checkpoints (every validate_every steps) are kept in OUT.parts.
  io::ChunkStore store(chunk_folder(o.out), ld3_settings(*model, student, *teacher, l), o.overwrite, o.out_field);
  if (o.on_note)
    o.on_note("search-schedule: LD3 for " + student.sampler().name() + " at NFE " + std::to_string(o.nfe) + " (" +
              std::to_string(steps) + " steps, final " + final_step_name(final) + "), teacher " + o.teacher + " on " +
              o.grid + ", " + std::to_string(o.warmup) + " training + " + std::to_string(o.valid) +
              " validation samples, " + std::to_string(o.iterations) + " Adam steps");
  const Ld3Result r =
      search_ld3(model, student, *teacher, l, store.memo(), [&](const std::string& phase, int64_t done, int64_t total) {
        if (o.on_progress) o.on_progress(phase, done, total);
      });
  note_loaded(o, store);
  // Files end in 0 (as GITS files); a grid learned for final none ends at σ_min before it, and
  // sampling under final none drops that 0 again when the file is used.
  result.sigmas = r.sigmas;
  if (result.sigmas.back() != 0) result.sigmas.push_back(0.0);
  ScheduleFile& f = result.file = schedule_file_for(*model, result.sigmas, "ld3");
  f.sampler = student.sampler().name() + (o.sampler_args.empty() ? "" : ":" + o.sampler_args);
  f.nfe = student.sampler().nfe_for(steps, final);
  f.teacher = o.teacher + " on " + o.grid + (o.grid_args.empty() ? "" : ":" + o.grid_args);
  f.warmup = o.warmup;
  f.seed = o.seed;
  f.cost = r.valid_loss;
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
  result.cost = r.valid_loss;
  result.details = {{"final", final_step_name(final)},    {"initial_sigmas", r.initial_sigmas},
                    {"valid_loss", r.valid_loss},         {"initial_valid_loss", r.initial_valid_loss},
                    {"best_iteration", r.best_iteration}, {"resumed_chunks", r.resumed}};
  return result;
}

}  // namespace

std::pair<std::unique_ptr<Sampler>, int> parse_teacher(const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    fail(Field{"teacher"}, " '", text, "' must be SAMPLER:STEPS, e.g. heun:60");
  auto teacher = make_sampler(text.substr(0, colon));
  std::vector<double> steps;
  try {
    steps = parse_double_list(text.substr(colon + 1), "teacher steps");
  } catch (const Error&) {
  }
  if (steps.size() != 1 || steps[0] < 2 || steps[0] > 1000 || steps[0] != static_cast<int>(steps[0]))
    fail(Field{"teacher"}, " '", text, "': STEPS must be one integer in [2, 1000]");
  return {std::move(teacher), static_cast<int>(steps[0])};
}

ScheduleSearchResult search_schedule_job(std::shared_ptr<const Model> model, const ScheduleSearchOptions& options) {
  if (options.method == "gits") return run_gits(std::move(model), options);
  if (options.method == "ld3") return run_ld3(std::move(model), options);
  fail(Field{"method"}, " '", options.method, "' is unknown; valid: gits, ld3");
}

io::Settings search_conditioning_settings(const SampleJob& c) {
  io::Settings s = conditioning_settings(c);  // tables by content, guidance settings (when tables)
  if (!c.cond.empty()) s.push_back({"cond rows", list_fingerprint(c.cond_rows)});
  if (c.labels.defined()) {
    const torch::Tensor labels = c.labels.to(torch::kCPU, torch::kLong).contiguous();
    s.push_back(
        {"labels", list_fingerprint({labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + labels.numel()})});
  }
  // conditioning_settings records the weight only along with tables; class guidance has none.
  if (c.guidance != 1.0 && c.cond.empty()) s.push_back({"guidance", exact(c.guidance)});
  return s;
}

io::Settings gits_settings(const Model& model, const Sampler& student, const std::string& student_args,
                           const Sampler& teacher, const GitsOptions& o) {
  io::Settings s = model_settings(model);
  s.insert(s.end(), {{"method", "gits"},
                     {"sampler", named(student.name(), student_args)},
                     {"teacher", teacher.name()},
                     {"candidates", exact_list(o.candidates)},
                     {"teacher substeps", std::to_string(o.teacher_substeps)},
                     {"warmup", std::to_string(o.warmup)},
                     {"seed", std::to_string(o.seed)},
                     {"batch", std::to_string(o.batch)},
                     {"dtype", c10::toString(o.dtype)},
                     {"metric", gits_metric_name(o.metric)},
                     // Not `coeff`: it weighs only the DP over the memoised sums, so a resume may change it.
                     {"student step", o.student_step ? "true" : "false"}});
  const io::Settings conditioning = search_conditioning_settings(o.conditioning);
  s.insert(s.end(), conditioning.begin(), conditioning.end());
  return s;
}

io::Settings ld3_settings(const Model& model, const Ld3Student& student, const Sampler& teacher, const Ld3Options& o) {
  io::Settings s = model_settings(model);
  s.insert(s.end(), {{"method", "ld3"},
                     {"sampler", named(student.sampler().name(), student.args())},
                     {"steps", std::to_string(o.steps)},
                     {"final", final_step_name(o.final)},
                     {"teacher", teacher.name()},
                     {"teacher sigmas", exact_list(o.teacher_sigmas)},
                     {"train samples", std::to_string(o.train_samples)},
                     {"valid samples", std::to_string(o.valid_samples)},
                     {"seed", std::to_string(o.seed)},
                     {"iterations", std::to_string(o.iterations)},
                     {"train batch", std::to_string(o.train_batch)},
                     {"lr", exact(o.lr)},
                     {"ball", exact(o.ball)},
                     {"shift lr", exact(o.shift_lr)},
                     {"validate every", std::to_string(o.validate_every)},
                     {"teacher batch", std::to_string(o.teacher_batch)},
                     {"dtype", c10::toString(o.dtype)}});
  const io::Settings conditioning = search_conditioning_settings(o.conditioning);
  s.insert(s.end(), conditioning.begin(), conditioning.end());
  return s;
}

nlohmann::json to_json(const ScheduleSearchResult& r, const ScheduleSearchOptions& o) {
  nlohmann::json doc = {{"command", "search-schedule"},
                        {"method", o.method},
                        {"sampler", r.file.sampler},
                        {"nfe", r.file.nfe},
                        {"steps", r.steps},
                        {"sigmas", r.sigmas},
                        {"out", o.out}};
  doc.update(r.details);
  return doc;
}

std::string search_summary(const ScheduleSearchResult& r, const ScheduleSearchOptions& o) {
  std::string grid;
  for (double s : r.sigmas) grid += (grid.empty() ? "" : ", ") + std::to_string(s);
  char tail[160];
  if (o.method == "gits")
    std::snprintf(tail, sizeof tail, "cost %.6g)", r.cost);
  else
    std::snprintf(tail, sizeof tail, "validation loss %.6g, initial %.6g, best at step %d)", r.cost,
                  r.details.at("initial_valid_loss").get<double>(), r.details.at("best_iteration").get<int>());
  return r.file.sampler + " NFE " + std::to_string(r.file.nfe) + ": sigmas " + grid + " (" + tail;
}

}  // namespace scoreflow::jobs
