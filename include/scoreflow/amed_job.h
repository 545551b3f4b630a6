#pragma once
/// `scoreflow train-amed` as a library call (docs/design.md §4, §8): the student grid and the
/// teacher's refined grid, training with restarts that keep the run with the lowest end-to-end
/// error, finished restarts kept in a chunk store so that an interrupted job resumes bit for bit,
/// and the files (predictor, loss log, table).
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "scoreflow/amed.h"
#include "scoreflow/checkpoint.h"
#include "scoreflow/run.h"

namespace scoreflow::jobs {

struct AmedJobOptions {
  std::string student = "amed", teacher = "heun";  ///< a pair check_amed_pair accepts
  /// The student grid: a grid name or file:PATH (resolve_sigmas); "": the authors' grid,
  /// vp_time_uniform for amed and karras (ρ = 7) for the plugins.
  std::string schedule, schedule_args;
  bool force = false;                 ///< use a schedule file made for another model
  FinalStep final = FinalStep::None;  ///< the sampling convention trained for (the paper's: none)
  /// Grid steps as a sampling command counts them; -1: 3 (4 under final zero), or a schedule file's.
  int steps = -1;
  int M = -1;  ///< teacher points per interval; -1: 1 for a heun teacher, 2 otherwise
  int batch = 128;
  int restarts = 1;  ///< seeds seed, seed + 1, ...; the run with the lowest validation RMS is kept
  int64_t num_trajectories = 10000;
  int64_t validate = -1;  ///< validation trajectories; -1: 1024 with restarts > 1, else none
  double lr = 5e-3, scale_dir = 0.01;
  double scale_time = -1;  ///< -1: 0 for amed, 0.2 for the plugins
  uint64_t seed = 0;
  bool afs = false;
  /// Conditioned models: guidance, condition tables and rows for trajectories [0, trajectories()),
  /// training and validation counting from 0 (as a SampleJob for that many seeds holds them).
  SampleJob conditioning;

  std::string out;    ///< the predictor file to write
  std::string table;  ///< "" or a JSON table to write too (models without features only)
  std::string log;    ///< "" or a CSV of the loss per optimiser step (seed,batch,step,sigma,sigma_next,loss)
  /// With restarts > 1, finished restarts are kept in chunk_folder(out) until every file is
  /// written; a folder made with other settings is refused naming the setting, unless overwrite.
  bool overwrite = false;
  std::string out_field = "out";     ///< how messages name `out` (the CLI gives its flag)
  std::string label = "train-amed";  ///< the prefix of the progress lines

  /// One-line notes for a log: the job, each run's losses and error, what was resumed and kept.
  std::function<void(const std::string&)> on_note;
  /// After each optimiser step (or each reused restart): steps done of the total, and a word on it.
  std::function<void(int64_t done, int64_t total, const std::string& extra)> on_progress;

  /// The validation count after defaults (validate, or its default for `restarts`).
  int64_t validation() const { return validate == -1 ? (restarts > 1 ? 1024 : 0) : validate; }
  /// The trajectories `conditioning` must cover: max(num_trajectories, validation()).
  int64_t trajectories() const { return std::max(num_trajectories, validation()); }
  /// Checks what needs no model: restarts >= 1, validation() >= 0 and > 0 with restarts > 1, and
  /// the outputs (out, table, log; io::check_outputs). Throws Error naming the field. (Not named
  /// validate(): that is the validation count.)
  void check() const;
};

/// One training run of a job: its seed, loss (summed over the steps) in the first and last batch,
/// and its end-to-end RMS against the teacher (-1: not measured).
struct AmedRun {
  uint64_t seed = 0;
  double first_loss = 0, last_loss = 0, validation_rms = -1;
};

struct AmedJobResult {
  AmedTrainOptions train;                    ///< what every run trained with (the kept run's seed)
  int steps = 0, nfe = 0;                    ///< grid steps as given or defaulted, and the student's network calls
  std::vector<AmedRun> runs;                 ///< every restart, in seed order
  size_t kept = 0;                           ///< the run whose predictor was written
  int reused = 0;                            ///< restarts taken from an interrupted job
  std::shared_ptr<AmedPredictor> predictor;  ///< the kept predictor (as written to out)
};

/// The grid the teacher solves: the same named grid with (M+1)·intervals + 1 points when its points
/// include the student's (karras, polynomial, logsnr, time_uniform, vp_time_uniform), else M
/// log-uniform points inserted per interval (refine_sigmas_log; `nested` then false).
std::vector<double> amed_teacher_grid(const std::string& schedule, const std::string& schedule_args, int M,
                                      const std::vector<double>& sigmas, const NoiseSchedule& noise,
                                      bool* nested = nullptr);

/// What a restart's result depends on (its chunk store's manifest): model_settings, the training
/// options `train` (the grids included) and the job's seed, validation count and conditioning.
io::Settings amed_restart_settings(const Model& model, const AmedTrainOptions& train, const AmedJobOptions& options);

/// Trains as `options` says and writes out (and table, log). Every option is checked before the
/// first network call; errors name the field (steps, restarts, validate, table, ...).
AmedJobResult train_amed_job(std::shared_ptr<const Model> model, const AmedJobOptions& options);

/// Writes a table-mode predictor's per-step (r, s, c, a) as JSON to `out` (save_amed_table);
/// `out_field` names `out` in messages.
void write_amed_table(const std::string& predictor, const std::string& out, const std::string& out_field = "out");

/// The job's summary as `scoreflow train-amed --json` prints it: the kept predictor's record
/// (student, teacher, steps, final, M, afs, features, sigmas, scale_dir, scale_time), the NFE, the
/// training options, the kept run's losses, seed and validation RMS (null when not measured),
/// every restart and the files; the caller adds the model and its wall time.
nlohmann::json to_json(const AmedJobResult& result, const AmedJobOptions& options);

}  // namespace scoreflow::jobs
