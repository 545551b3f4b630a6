#pragma once
/// `scoreflow eval score-matching | wbound | fid` as library calls (docs/design.md §8): each job
/// checks its settings (errors name the fields), records what identifies its result in a chunk
/// store next to `out` so that a killed run resumes, and returns (and writes to `out`) the JSON
/// report the command prints with --json. A front end only reads its flags and prints.
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "scoreflow/conditioning.h"
#include "scoreflow/fid.h"
#include "scoreflow/jobs.h"
#include "scoreflow/latent.h"
#include "scoreflow/score_matching.h"
#include "scoreflow/wbound.h"

namespace scoreflow::jobs {

/// The noise levels of an evaluation: `sigmas` when given (each > 0, else Error naming field
/// sigmas), else `timesteps` levels over the schedule's range (eval::evaluation_sigmas).
std::vector<double> evaluation_levels(const std::vector<double>& sigmas, int timesteps, const NoiseSchedule& schedule);

/// What a conditional model is conditioned on for `items` dataset items (unset: nothing).
using ConditionsFor = std::function<ItemConditions(const Model& model, int64_t items)>;

/// Where an evaluation's report goes. With `out`, finished levels are kept in chunk_folder(out)
/// until the report is written; a folder made with other settings is refused naming the setting,
/// unless `overwrite`.
struct EvalOutput {
  std::string out;                ///< "" none (then nothing is kept)
  bool overwrite = false;         ///< discard an unfinished run instead of resuming it
  std::string out_field = "out";  ///< how messages name `out` (the CLI gives its flag)
};

struct ScoreMatchingJob {
  std::string data;            ///< a dataset or builtin:NAME target (eval::ExactTarget)
  int64_t limit = 0;           ///< the first `limit` dataset items (0: all)
  std::vector<double> sigmas;  ///< explicit noise levels; empty: `timesteps` levels (evaluation_levels)
  int timesteps = 10;
  int64_t num_images = 256, batch = 64;
  uint64_t seed = 0;
  ConditionsFor conditions;
  EvalOutput output;
};

struct ScoreMatchingJobResult {
  std::string model, target;  ///< as the report names them
  std::vector<eval::ScoreMatchingRow> rows;
  std::vector<double> times;  ///< the network time of each row's σ
  nlohmann::json report;      ///< as written to `out`
  int64_t resumed = 0;        ///< levels taken from an unfinished run
};

/// eval::score_matching of `model` against job.data, as `eval score-matching` reports it.
ScoreMatchingJobResult score_matching_job(std::shared_ptr<const Model> model, const ScoreMatchingJob& job);

struct WBoundJob {
  std::string data;  ///< as ScoreMatchingJob
  int64_t limit = 0;
  std::vector<double> sigmas;
  int timesteps = 12;
  /// lipschitz_points, iterations, num_images, batch, use_dsm, ode_* and seed; sigmas, dtype and
  /// conditions are the job's (dtype: float64 for builtin models, float32 for TorchScript).
  eval::WBoundOptions options;
  ConditionsFor conditions;
  EvalOutput output;
};

struct WBoundJobResult {
  std::string model, target;
  eval::WBoundReport bound;
  nlohmann::json report;
  int64_t resumed = 0;
};

/// eval::wasserstein_bound of `model` against job.data, as `eval wbound` reports it.
WBoundJobResult wbound_job(std::shared_ptr<const Model> model, const WBoundJob& job);

/// Samples of a model for fid_job: the sampler and job a front end built from its choices, and
/// those choices as text (they identify the samples in the resume manifest and a shard's record).
struct FidSampling {
  std::vector<std::shared_ptr<const Model>> models;  ///< one copy per device
  std::shared_ptr<const Sampler> sampler;
  FinalStep final = FinalStep::Zero;
  SampleJob job;                                ///< this process's seeds (a shard's rows of all of them)
  int64_t total = 0, begin = 0;                 ///< job.seeds are [begin, begin + size) of `total` seeds
  std::shared_ptr<const ImageDecoder> decoder;  ///< samples -> images (FD/KID see images)
  int64_t decode_batch = 16;
  std::string sampler_args, schedule, schedule_args, seeds;
  std::string conditioning;  ///< guidance and conditioning as text; "" for none (unconditional, guidance 1)
};

struct FidJob {
  std::string features;  ///< a TorchScript feature network, or "none"
  /// The feature network's devices ("cuda:0", ...; parse_device); empty: one copy on `device`.
  std::vector<std::string> devices;
  std::string device = "cpu";
  std::string ref;           ///< reference statistics .npz, or
  std::string ref_data;      ///< a reference dataset
  int64_t limit = 0;         ///< the first `limit` reference items (0: all)
  std::string samples_path;  ///< sample rows (io::load_sample_rows), or
  /// samples from a model: called once the settings are checked, with the shard (nullptr when
  /// not sharded) whose rows to sample.
  std::function<FidSampling(const Shard* shard)> model_samples;
  std::string data_range = "-1,1";  ///< "lo,hi" of samples_path / ref_data
  FidOptions fid;
  /// A sharded job writes the feature sums of its rows to shard_path(save_stats, shard) for
  /// merge_shards: of the samples, or of ref_data when there are none.
  Shard shard;
  std::string save_stats;  ///< mu/sigma of the samples (of the reference when none)
  EvalOutput output;       ///< with model_samples, finished sample batches are kept (not for a shard)
};

struct FidJobResult {
  nlohmann::json report;      ///< as `eval fid --json` prints it (and `out` holds)
  FidReport metrics;          ///< unsharded
  bool identity = false;      ///< features "none"
  std::string partial_stats;  ///< a shard's file
  int64_t count = 0;          ///< a shard's rows
};

/// FD (KID, sliced W2) of the samples against the reference, or a shard's partial statistics.
/// Settings are checked before any file is read; errors name the fields (ref, ref_data,
/// samples_path, model_samples, kid, data_range, save_stats, out).
FidJobResult fid_job(const FidJob& job);

}  // namespace scoreflow::jobs
