#pragma once
/// Schedule files: a σ grid saved with how it was made (`--schedule file:PATH.json`), so that a grid
/// searched for one model (GITS, or any list) is reused by sample, compare, eval fid, train-amed and
/// bench — and refused for another model, naming the field that differs.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "scoreflow/args.h"
#include "scoreflow/error.h"
#include "scoreflow/final_step.h"
#include "scoreflow/model.h"

namespace scoreflow {

/// What a schedule file holds. JSON: {"format": "scoreflow-schedule/1", "sigmas": [...], "steps",
/// "method", "sampler", "nfe", "model", "model_hash", "schedule", "teacher", "warmup", "seed", "cost"
/// [, "settings": {name: value, ...}]}.
struct ScheduleFile {
  std::vector<double> sigmas;  ///< σ_0 > … > σ_{N−1} > 0 = σ_N, as sampled
  std::string method;          ///< how it was made: "gits", "list", ...
  std::string sampler;         ///< the solver it was made for (informational; "" = any)
  int64_t nfe = 0;             ///< that solver's network evaluations on this grid (0 = unknown)
  std::string model;           ///< Model::name() (informational)
  std::string model_hash;      ///< model_fingerprint of the model it was made for
  std::string schedule;        ///< NoiseSchedule::describe() of that model
  std::string teacher;         ///< search settings (GITS: the teacher sampler:steps)
  int64_t warmup = 0;
  uint64_t seed = 0;
  double cost = -1;  ///< the search's objective at this grid (-1: none)
  /// Further search settings (LD3: final, iterations, lr, ...); written only when not empty, read back
  /// sorted by name.
  std::vector<std::pair<std::string, std::string>> settings;
  int steps() const { return static_cast<int>(sigmas.size()) - 1; }
};

/// A file's record for `model` (name, hash, schedule filled in) and `sigmas`.
ScheduleFile schedule_file_for(const Model& model, std::vector<double> sigmas, std::string method);
/// Writes the JSON atomically. Throws Error when the grid is not strictly decreasing to 0.
void save_schedule_file(const std::string& path, const ScheduleFile& file);
/// Reads and validates a file written by save_schedule_file; throws Error naming the file and field.
ScheduleFile load_schedule_file(const std::string& path);

/// Thrown when a schedule file was made for another model or schedule (the caller may offer a way
/// to use it anyway).
class ScheduleMismatch : public Error {
 public:
  using Error::Error;
};
/// Throws ScheduleMismatch naming the field ("model_hash", "schedule") when `file` was not made for `model`.
void check_schedule_file(const ScheduleFile& file, const Model& model, const std::string& path);

/// The grid a command samples on: `spec` is a registered grid name (make_sigmas with `args`) or
/// "file:PATH" (checked against `model` unless `force`; takes no args). steps ≤ 0: not asked — the
/// file's own count, or `default_steps` for a named grid; a file with another count is refused.
/// `final` as in make_sigmas; under none/denoise a file's trailing 0 is dropped (its steps counted without it).
std::vector<double> resolve_sigmas(const std::string& spec, int steps, int default_steps, const Model& model,
                                   const KeyValueArgs& args, bool force = false, FinalStep final = FinalStep::Zero);
/// "file:PATH" → PATH; "" for a grid name.
std::string schedule_file_path(const std::string& spec);

}  // namespace scoreflow
