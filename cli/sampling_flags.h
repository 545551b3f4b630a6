#pragma once
// The flags every command that samples a model shares (sample, eval fid --model): sampler, grid,
// final step, seeds, guidance and conditioning (and, for sample, explicit σ, a trajectory, --class
// and --init-noise), registered once, and the SampleJob they make. The choices and checks are the
// library's (jobs::prepare_sample_job, scoreflow/jobs/prepare.h); this reads flags.
#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "cli/cond_options.h"
#include "scoreflow/jobs.h"
#include "scoreflow/jobs/prepare.h"

namespace scoreflow::cli {

/// What SamplingFlags::build made: jobs::prepare_sample_job's sampler and job, and a note.
struct PreparedJob : jobs::PreparedSampleJob {
  std::string note;  ///< how --nfe or an AMED file chose the grid, for stderr; "" when neither did
};

struct SamplingFlags {
  CondOptions cond;
  std::string sampler = "heun", sampler_args, schedule = "karras", schedule_args, final, seeds;
  std::string sigmas, trajectory, gamma, label, init_noise;  // with `all` (sample) only
  int steps = -1, nfe = -1;                                  // -1: not given
  double guidance = 1.0;
  bool force = false;
  /// Help texts of --guidance, --schedule and --final for commands whose defaults differ (nullptr: the
  /// sampling commands'); set before add().
  const char* guidance_help = nullptr;
  const char* schedule_help = nullptr;
  const char* final_help = nullptr;

  /// Which flags add() registers: conditioning (CondOptions' and --guidance), the sampler (--sampler,
  /// --sampler-args, --steps, --nfe, --seeds), the grid (--schedule, --schedule-args, --final,
  /// --force), sample's own (--sigmas, --trajectory, --gamma, --class, --init-noise) and --class alone.
  enum Parts : unsigned { kConditioning = 1, kSampler = 2, kGrid = 4, kSampleOnly = 8, kAll = 15, kClass = 16 };
  /// Registers the `parts` flags, `default_seeds` the default of --seeds; `cond_outputs` as CondOptions::add.
  void add(CLI::App& app, unsigned parts, const std::string& default_seeds = "", bool cond_outputs = true);
  /// The flags as the library's plain settings (--sigmas parsed here).
  jobs::SamplingChoice choice() const;
  /// jobs::prepare_sample_job on `model` for `shard`'s whole batches of `batch` seeds, and the note.
  PreparedJob build(const Model& model, int batch, const jobs::Shard* shard = nullptr) const;
  /// --schedule or --schedule-args given (then no AMED file's own grid).
  bool grid_given() const;
  /// jobs::prepare_conditioning: the conditioning of samples with `seeds`, as build() gives a job.
  SampleJob conditioning(const Model& model, std::vector<uint64_t> seeds, bool unconditional = false,
                         std::string* note = nullptr) const;

 private:
  CLI::Option* schedule_option_ = nullptr;
  CLI::Option* schedule_args_option_ = nullptr;
};

}  // namespace scoreflow::cli
