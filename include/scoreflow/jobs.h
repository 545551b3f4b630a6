#pragma once
/// The job layer (docs/design.md §8): what a long run needs around the samplers and estimators.
/// - A shard plan: which contiguous slice of whole batches this process takes (`i/n`, or a
///   launcher's rank variables), and shard records that a merge checks before it combines files.
/// - One splitter: the same slices, run on several devices of one process, one thread each.
/// - Resumable chunked sampling over io::ChunkStore, keyed by seed index, so that a killed run
///   resumes from its finished chunks on one device or several.
/// - One merge: the shard files of a job (samples, Γ statistics, feature moments) back into the
///   file one unsharded run writes.
/// Every piece keeps results independent of the split: sample i always draws from seed i, and a
/// network call always sees the same whole batch.
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "scoreflow/checkpoint.h"
#include "scoreflow/data.h"
#include "scoreflow/fingerprint.h"
#include "scoreflow/gamma_estimation.h"
#include "scoreflow/gamma_table.h"
#include "scoreflow/ld3.h"
#include "scoreflow/npy.h"
#include "scoreflow/run.h"
#include "scoreflow/schedule_search.h"

namespace scoreflow::jobs {

// ---- the shard plan ------------------------------------------------------------------------------

/// This process's share of a job: shard `index` of `count`, and where that came from.
struct Shard {
  int64_t index = 0;
  int64_t count = 1;
  std::string source = "none";  ///< "shard" (given explicitly), "RANK/WORLD_SIZE", "SLURM_PROCID/SLURM_NTASKS", ...
  bool sharded() const { return count > 1; }
  /// "shard-0-of-2"
  std::string label() const;
  nlohmann::json to_json() const;
};

/// Parses "i/n" (0 <= i < n). `source` names where the text came from in the error: "shard" (the
/// field of an explicit choice) or the launcher's variables.
Shard parse_shard(const std::string& text, const std::string& source = "shard");

/// `shard` ("i/n") when not empty, else the first launcher that set its variables:
/// RANK/WORLD_SIZE (torchrun), OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE (mpirun),
/// SLURM_PROCID/SLURM_NTASKS (srun, when more than one task), SLURM_ARRAY_TASK_ID/
/// SLURM_ARRAY_TASK_COUNT (a job array; the index counts from SLURM_ARRAY_TASK_MIN). Else 0/1.
Shard resolve_shard(const std::string& shard);

/// Item range [begin, end) of slice `index` of `count`: whole blocks of `block` items (so every
/// network call sees the same items as an unsplit run), slice i taking blocks
/// [i·B/n, (i+1)·B/n) of the B = ceil(items/block); contiguous, in order, possibly empty.
std::pair<int64_t, int64_t> shard_range(int64_t items, int64_t block, int64_t index, int64_t count);
inline std::pair<int64_t, int64_t> shard_range(int64_t items, int64_t block, const Shard& s) {
  return shard_range(items, block, s.index, s.count);
}

/// "out.npz" -> "out.shard-0-of-2.npz"; `ext`, when given, replaces the extension
/// ("gamma.json" with ".npz" -> "gamma.shard-0-of-2.npz").
std::string shard_path(const std::string& path, const Shard& shard, const std::string& ext = "");

// ---- the device splitter -------------------------------------------------------------------------

/// Runs `work(k)` for k = 0..n-1 on n threads (n = 1: on this one) and rethrows the first
/// exception (lowest k) once all have ended.
void run_on_threads(int64_t n, const std::function<void(int64_t)>& work);

/// Splits items [0, items) over `workers` as shards k/workers would split them (whole blocks) and
/// runs `work(k, begin, end)` for every non-empty slice, each on its own thread. Returns the
/// slices, empty ones included, in order: joining the workers' results in k order gives the
/// unsplit result.
std::vector<std::pair<int64_t, int64_t>> split_over_workers(
    int64_t items, int64_t block, int64_t workers,
    const std::function<void(int64_t k, int64_t begin, int64_t end)>& work);

// ---- what identifies a run -----------------------------------------------------------------------

/// The settings every resumable or sharded job records about its model: "model"
/// (model_fingerprint), "model metadata" (hash of the resolved metadata) and "device" (cpu/cuda).
io::Settings model_settings(const Model& model);

/// What a sampling job's conditioning adds to its record: "conditioning" = the condition tables'
/// values, the unconditional tables, guidance weight, interval and rescale (the arrays by content,
/// so a resume with other conditions is refused whatever file they came from). Not the rows: a
/// shard's job holds its own slice of them, and every shard records the same settings; the caller
/// records how rows were chosen (the explicit list, or i mod P).
/// Nothing for a job without condition tables and with the default interval and rescale, so that
/// older records still match (the caller records the guidance weight and labels).
io::Settings conditioning_settings(const SampleJob& job);

/// "%.17g": a double that reads back exactly (settings, records, schedule files).
std::string exact(double value);
/// exact() values joined by commas (grids and noise levels).
std::string exact_list(const std::vector<double>& values);

/// The folder holding the unfinished chunks of a job whose output is `output` (a file or a
/// folder): "<output>.parts". One name for every command and device count.
std::string chunk_folder(const std::string& output);

/// "note: resumed the unfinished run in 'DIR': N finished WHAT reused" on stderr when count > 0.
void note_resumed(const std::string& dir, int64_t count, const char* what);

// ---- a sampling job's grid -----------------------------------------------------------------------

/// How a sampling job's σ grid is chosen, as plain settings: explicit `sigmas`, a `trajectory`
/// (not both), else the grid an AMED predictor= / table= file was trained on (when neither steps,
/// nfe nor a schedule is given), else `schedule`. steps and nfe: -1 when not given (not both).
struct GridChoice {
  std::vector<double> sigmas;       ///< explicit descending σ (explicit_sigmas: 0 appended under final zero)
  std::string trajectory;           ///< discrete timesteps even|quadratic|optimal (vp_discrete models)
  std::string gamma;                ///< Γ file for the optimal trajectory (load_gamma_for); "" none
  std::string schedule = "karras";  ///< a grid name or file:PATH (resolve_sigmas)
  std::string schedule_args;        ///< the named grid's k=v,... options
  bool schedule_given = false;      ///< schedule or schedule_args chosen (then no AMED file's own grid)
  int steps = -1, nfe = -1;
  int default_steps = 20;  ///< a schedule's steps when neither steps nor nfe is given (a trajectory's: 10)
  bool force = false;      ///< use a schedule file made for another model
};

/// The grid choose_grid chose, and from what.
struct ChosenGrid {
  std::vector<double> sigmas;
  std::string source;  ///< "sigmas", "trajectory", "trained" (the AMED file's grid) or "schedule"
  int nfe_steps = 0;   ///< the steps `nfe` gave (Sampler::steps_for_nfe), 0 when nfe was not given
};

/// The grid `sampler` (made from `sampler_args`) runs under `final` on `model`, as `choice` says;
/// checked against the final step (check_final_grid). Throws Error naming the fields (steps, nfe,
/// sigmas, trajectory, force) and the values in conflict.
ChosenGrid choose_grid(const GridChoice& choice, const Model& model, const Sampler& sampler,
                       const std::string& sampler_args, FinalStep final);

/// The final step named `final` (zero | none | denoise), or the sampler's own default for "";
/// checked against the sampler (Sampler::check_final) and its args (denoise_to_zero=true is final
/// denoise on a grid ending in 0, refused with none or denoise). Throws Error naming the field.
FinalStep choose_final(const std::string& final, const Sampler& sampler, const std::string& sampler_args);

// ---- schedule searches ---------------------------------------------------------------------------

/// The resume manifest of search_gits: model_settings and every option that changes its result
/// (`student_args` as given to make_sampler), the samples' conditioning included (its tables by
/// content, rows, labels and guidance, as search_conditioning_settings gives them).
io::Settings gits_settings(const Model& model, const Sampler& student, const std::string& student_args,
                           const Sampler& teacher, const GitsOptions& options);
/// The resume manifest of search_ld3 (with its samples' conditioning, as gits_settings).
io::Settings ld3_settings(const Model& model, const Ld3Student& student, const Sampler& teacher,
                          const Ld3Options& options);

/// What a search's conditioning (GitsOptions/Ld3Options::conditioning) adds to its manifest:
/// conditioning_settings, and "cond rows", "labels" and "guidance" (hashes of the per-sample lists,
/// the weight) when there are any. Nothing for an unconditional search with guidance 1, so that
/// the manifests of searches made before conditioning existed still match.
io::Settings search_conditioning_settings(const SampleJob& conditioning);

// ---- resumable chunked sampling ------------------------------------------------------------------

/// Called with a chunk's first index in the job's seeds and its samples [count, ...shape]
/// (float32, CPU), whether sampled now or loaded; in seed order on one device.
using ChunkCallback = std::function<void(int64_t begin, const torch::Tensor& samples)>;

struct ChunkOptions {
  /// Where finished chunks are kept and found again (null: nothing kept). One store can serve
  /// several devices at once.
  io::ChunkStore* store = nullptr;
  /// Index of job.seeds[0] in the whole job: chunks are named by whole-job seed indices, so that a
  /// re-run with another device count finds them.
  int64_t first_index = 0;
  ChunkCallback on_chunk;
  BatchCallback on_batch;  ///< (samples done, total); on several devices, from any thread, one call at a time
  StepCallback on_step;    ///< one device only
};

struct ChunkedResult {
  SampleResult result;
  int64_t resumed = 0;  ///< samples loaded from chunks of an earlier run
};

/// run_sampler over `job`, one chunk of job.batch seeds at a time; finished chunks go to the store
/// on a writer thread while the next chunk samples, and chunks an earlier run left there are
/// loaded instead of sampled.
ChunkedResult run_chunked(const Sampler& sampler, std::shared_ptr<const Model> model, const SampleJob& job,
                          const ChunkOptions& options = {});

/// run_chunked with the seeds split over `models` (each on its own device; job.device is ignored)
/// by split_over_workers; equal to one device's result. The store (if any) is shared; the caller
/// removes it once its own outputs are written, so that a kill before then loses nothing.
ChunkedResult run_on_devices(const Sampler& sampler, const std::vector<std::shared_ptr<const Model>>& models,
                             const SampleJob& job, const ChunkOptions& options = {});

// ---- shard records and merging -------------------------------------------------------------------

/// The npz key holding a shard file's record (JSON as uint8 bytes).
constexpr const char* kShardKey = "scoreflow_shard";

/// A shard record: kind ("samples", "gamma", "fid"), the job's settings (all shards of one job
/// have equal settings), this shard's i/n and its item range of `total`.
nlohmann::json shard_record(const std::string& kind, const Shard& shard, const io::Settings& settings, int64_t begin,
                            int64_t end, int64_t total);
io::NpyArray record_array(const nlohmann::json& record);
/// The record of a shard file's arrays; throws naming `path` when it has none.
nlohmann::json read_record(const std::map<std::string, io::NpyArray>& arrays, const std::string& path);

/// Checks that `records` (one per file in `paths`) form one complete job: the same kind and
/// settings, every shard 0..n-1 exactly once, ranges tiling [0, total). Returns the file order
/// by shard index. Throws naming the missing, repeated or mismatched shard.
std::vector<size_t> check_shard_set(const std::vector<nlohmann::json>& records, const std::vector<std::string>& paths);

/// The files of one sharded job, checked and in shard order.
struct ShardSet {
  std::vector<std::map<std::string, io::NpyArray>> files;
  std::vector<nlohmann::json> records;
  std::vector<std::string> paths;
  std::string kind() const { return records.at(0).at("kind").get<std::string>(); }
};
ShardSet read_shard_set(const std::vector<std::string>& paths);

/// Writes the file one unsharded run writes from `set` to `out`: samples (.npz, rows joined in
/// seed order), gamma (the Γ file, batch statistics replayed in batch order: byte-identical) or fid
/// (mu/sigma .npz from the merged moment sums: equal to float64 rounding). Returns a summary
/// (num_samples; timesteps and clipped; count and feature_dim).
nlohmann::json merge_shards(const ShardSet& set, const std::string& out);

// ---- Γ estimation split over shards and devices -------------------------------------------------

/// Per timestep, the statistics of the batches a run made, in batch order.
using GammaBatches = std::map<int64_t, std::vector<GammaBatchStats>>;

/// Runs `job` (its first_batch/end_batch give the range) split over `models` (one per device) by
/// split_over_workers; `on_timestep()` after each timestep, once every device has finished it (one
/// call at a time).
GammaBatches estimate_gamma_batches(const std::vector<std::shared_ptr<const Model>>& models, const io::Dataset& data,
                                    const GammaEstimation& job, const std::function<void()>& on_timestep = {});

/// Replays `batches` into `table` as one run adds them (timesteps with no batch are left unset).
void replay_gamma(const GammaBatches& batches, GammaTable& table);

/// What a Γ job's results depend on, for shard records and its chunk store: model_settings but the
/// device (shards and resumes may run on other kinds, as merges always allowed), the schedule, the
/// dataset and `meta.settings` (num_images, batch, seed, timesteps, conditions).
io::Settings gamma_settings(const Model& model, const GammaMeta& meta);

struct GammaChunkOptions {
  /// Where finished timesteps are kept and found again (null: nothing kept). One chunk per
  /// timestep, "gamma-t<t>": [B, 3] float64 (count, Σv, M2) of its batches in batch order, written
  /// once every device has finished the timestep. The store's settings are the caller's
  /// (gamma_settings plus the batch range); a chunk of another batch count is redone.
  io::ChunkStore* store = nullptr;
  /// After each timestep computed now (not loaded), with the timesteps done so far (loaded ones
  /// included), the job's total and that timestep's images/s; one call at a time.
  std::function<void(int64_t done, int64_t total, double images_per_second)> on_timestep;
};

struct GammaChunked {
  GammaBatches batches;          ///< every timestep of the job, in batch order: replay_gamma makes the table
  int64_t resumed = 0;           ///< timesteps loaded from the store
  double images_per_second = 0;  ///< timesteps computed now after the first (warm-up), per second; 0 if < 2
};

/// estimate_gamma_batches over the timesteps `options.store` does not hold yet, keeping each
/// finished one there; loaded and computed timesteps together replay to the table of one
/// uninterrupted run, bit for bit, whatever the devices and however often it was interrupted.
GammaChunked estimate_gamma_chunked(const std::vector<std::shared_ptr<const Model>>& models, const io::Dataset& data,
                                    const GammaEstimation& job, const GammaChunkOptions& options = {});

/// `shard`'s part of `job` over `models` (resumable through `options.store`), written to `path` as
/// a gamma shard file (record with the Γ file's metadata; arrays timesteps [T], batch_count /
/// batch_sum / batch_m2 [T, B]). Returns the image range [begin, end).
std::pair<int64_t, int64_t> estimate_gamma_shard(const std::vector<std::shared_ptr<const Model>>& models,
                                                 const io::Dataset& data, const GammaEstimation& job,
                                                 const GammaMeta& meta, const Shard& shard, const std::string& path,
                                                 const GammaChunkOptions& options = {});

/// `scoreflow estimate-gamma` as a library call: the files, resume and shards around
/// estimate_gamma_chunked.
struct GammaJobOptions {
  /// The Γ file (JSON). A shard writes shard_path(out, shard, ".npz") for `scoreflow merge`
  /// instead. Unfinished timesteps are kept in chunk_folder(<that file>) until it is written.
  std::string out;
  Shard shard;
  /// Discard an unfinished run (the chunk folder) and an existing Γ file instead of resuming.
  bool overwrite = false;
  /// The flag naming `out` in messages ("--out").
  std::string out_option = "--out";
  /// One-line notes: the shard's image range, what was resumed.
  std::function<void(const std::string&)> on_note;
  /// As GammaChunkOptions::on_timestep.
  std::function<void(int64_t done, int64_t total, double images_per_second)> on_timestep;
};

struct GammaJobResult {
  std::string path;                               ///< the file written
  std::pair<int64_t, int64_t> image_range{0, 0};  ///< images this run covers (a shard's share)
  int64_t resumed = 0;                            ///< timesteps taken from an earlier run
  double images_per_second = 0;                   ///< as GammaChunked
  std::optional<GammaTable> table;                ///< unsharded: the table written to `out`
};

/// Estimates Γ for `job` (`meta` describes it in the file: gamma_meta_for, dataset, settings) and
/// writes options.out (or the shard file). Resumes the chunk folder an interrupted run left; a
/// folder made with other settings is refused naming the setting, unless options.overwrite.
/// An existing Γ file (a finished run, or an interrupted run of a version that saved partial
/// tables there) counts as done for the timesteps it holds when its settings match, and is
/// refused naming the setting otherwise.
GammaJobResult estimate_gamma_job(const std::vector<std::shared_ptr<const Model>>& models, const io::Dataset& data,
                                  const GammaEstimation& job, const GammaMeta& meta, const GammaJobOptions& options);

}  // namespace scoreflow::jobs
