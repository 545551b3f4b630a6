#pragma once
/// `scoreflow search-schedule` as a library call (docs/design.md §8): a GITS or LD3 search for one
/// model, student and NFE, resumable over a chunk store, written as a schedule file.
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "scoreflow/run.h"
#include "scoreflow/sampler.h"
#include "scoreflow/schedule_file.h"

namespace scoreflow::jobs {

/// The teacher of "SAMPLER:STEPS" (e.g. heun:60) and its step count (an integer in [2, 1000]);
/// throws Error naming the field `teacher` otherwise.
std::pair<std::unique_ptr<Sampler>, int> parse_teacher(const std::string& text);

struct ScheduleSearchOptions {
  std::string method = "gits";                  ///< gits | ld3
  std::string sampler = "ipndm", sampler_args;  ///< the student
  int nfe = -1;                                 ///< the student's network-call budget (required)
  std::string teacher = "ipndm:60";             ///< SAMPLER:STEPS (parse_teacher)
  std::string grid = "karras", grid_args;       ///< the teacher grid's kind (make_sigmas)
  int batch = 256;                              ///< samples per denoiser call (teacher; LD3 validation)
  int64_t warmup = 256;                         ///< GITS: teacher trajectories; LD3: training samples
  uint64_t seed = 0;                            ///< first seed of the warm-up noise (LD3: validation seeds follow)
  std::string final;                            ///< "": zero; LD3 also searches none (GITS grids end in 0)
  // GITS
  int teacher_substeps = 1;
  std::string metric = "dev";
  double coeff = 1.15;
  bool student_step = false;
  // LD3
  int64_t valid = 64;
  int iterations = 200, train_batch = 16, validate_every = 10;
  double lr = 0.02, ball = -1, shift_lr = -1;
  /// The samples' conditioning, one entry per seed seed, seed + 1, ... (samples() of them), as
  /// GitsOptions::conditioning; empty for a model without conditions.
  SampleJob conditioning;

  std::string out;                ///< the schedule file; unfinished work is kept in chunk_folder(out)
  bool overwrite = false;         ///< discard an unfinished search with other settings
  std::string out_field = "out";  ///< how messages name `out` (the CLI gives its flag)
  /// One-line notes for a log: the search, what was resumed.
  std::function<void(const std::string&)> on_note;
  /// (phase "gits", "teacher" or "train", done, total) as the search goes.
  std::function<void(const std::string& phase, int64_t done, int64_t total)> on_progress;

  /// The samples the search draws (their conditioning): warmup, plus valid for LD3.
  int64_t samples() const { return method == "ld3" ? warmup + valid : warmup; }
  /// Their seeds: seed, seed + 1, ... (samples() of them), the seeds `sample --seeds` gives them.
  std::vector<uint64_t> sample_seeds() const {
    std::vector<uint64_t> seeds;
    for (int64_t k = 0; k < samples(); ++k) seeds.push_back(seed + static_cast<uint64_t>(k));
    return seeds;
  }
};

struct ScheduleSearchResult {
  ScheduleFile file;  ///< as written to `out`
  int steps = 0;      ///< the student's steps for its NFE
  FinalStep final = FinalStep::Zero;
  std::vector<double> sigmas;  ///< the grid found (ending in 0, as the file)
  double cost = 0;             ///< GITS: the objective; LD3: the validation loss
  /// The method's own results: GITS candidate_indices, cost, resumed_batches; LD3 final,
  /// initial_sigmas, valid_loss, initial_valid_loss, best_iteration, resumed_chunks.
  nlohmann::json details;
};

/// Checks every option (errors name the field), runs the search on `model` over the chunk store
/// of `out` (a killed search resumes; one made with other settings is refused naming the setting,
/// unless overwrite) and writes the schedule file.
ScheduleSearchResult search_schedule_job(std::shared_ptr<const Model> model, const ScheduleSearchOptions& options);

/// The search's summary as `scoreflow search-schedule --json` prints it: command, method, sampler,
/// nfe, steps, sigmas, out and the method's details; the caller adds the model, its conditioning
/// and its wall time.
nlohmann::json to_json(const ScheduleSearchResult& result, const ScheduleSearchOptions& options);

/// One line on the grid found: "ipndm NFE 5: sigmas 80.000000, ..., 0.000000 (cost 0.0123)"; LD3
/// gives its validation loss, the initial one and the best step instead of the cost.
std::string search_summary(const ScheduleSearchResult& result, const ScheduleSearchOptions& options);

}  // namespace scoreflow::jobs
