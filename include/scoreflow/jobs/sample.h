#pragma once
/// `scoreflow sample` as a library call: a sampling job run on one or several devices (one model
/// copy each), resumable through a chunk store next to its outputs, written as an .npz, a PNG grid
/// and one PNG per seed. Settings are named by their fields in errors ("outputs.grid"), as the
/// rest of the job layer (scoreflow/jobs.h).
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "scoreflow/jobs.h"
#include "scoreflow/latent.h"
#include "scoreflow/model.h"

namespace scoreflow::jobs {

/// "cuda:0,cuda:1" or "cpu,cpu" → the devices (each checked by parse_device); "" → {}. Throws Error
/// naming the field devices for an empty entry.
std::vector<std::string> parse_devices(const std::string& text);

/// `open(device)` once per entry of `devices`, in order; once with `default_device` when `devices`
/// is empty. The copies a multi-device job splits its work over (run_on_devices).
std::vector<std::shared_ptr<const Model>> open_on_devices(
    const std::function<std::shared_ptr<const Model>(const std::string& device)>& open,
    const std::vector<std::string>& devices, const std::string& default_device);

/// Where a sampling job's results go; empty: not written. For a shard, the grid and npz get
/// shard_path() names; PNGs of every shard go into the one png_dir.
struct SampleOutputs {
  /// samples (float32; latents for latent models), seeds (int64), images (uint8 NHWC, decoded;
  /// image-shaped samples only), labels and cond_rows (when the job has them) and, for a shard,
  /// its record (kShardKey) for merge_shards.
  std::string npz;
  std::string grid;     ///< one PNG of every sample (make_grid); not written for an empty shard
  std::string png_dir;  ///< one PNG per seed, "seed%06llu.png", written chunk by chunk
  /// The caller only wants the returned result (e.g. a summary): with no file named, a job is still
  /// run when this is set, and refused otherwise.
  bool result_only = false;
};

/// What identifies a sample job's results besides its model and SampleJob, as the caller was given
/// it (recorded in the chunk store's manifest and a shard's record).
struct SampleSettings {
  std::string sampler_args;  ///< as given to make_sampler
  std::string init_noise;    ///< the initial-noise file ("" when the noise is seeded), by content
  std::string label;         ///< the class choice as given ("" none)
  std::string dtype = "fp32";
  std::string cond_rows;  ///< the explicit condition rows as given ("" when not chosen)
};

/// The settings a sampling job's chunk store and shard record hold: model_settings, the sampler,
/// its args, the grid, final step, every seed of the job (`all_seeds`, not a shard's), the initial
/// noise, class, guidance, batch (CPU kernels round differently for another batch size), dtype and
/// the conditioning (conditioning_settings and the chosen rows).
io::Settings sample_settings(const Model& model, const Sampler& sampler, const SampleJob& job,
                             const std::vector<uint64_t>& all_seeds, const SampleSettings& settings);

struct SampleJobOptions {
  SampleOutputs outputs;
  SampleSettings settings;
  Shard shard;                      ///< this process's share (job.seeds are its seeds)
  std::vector<uint64_t> all_seeds;  ///< the whole job's seeds (job.seeds when empty)
  int64_t first_index = 0;          ///< index of job.seeds[0] in all_seeds
  /// Decodes samples into images for PNGs and the npz's images (ImageDecoder::for_model when unset).
  std::shared_ptr<const ImageDecoder> decoder;
  int64_t decode_batch = 16;
  /// Discard an unfinished run's chunks instead of resuming them.
  bool overwrite = false;
  BatchCallback on_batch;  ///< as ChunkOptions
  StepCallback on_step;    ///< as ChunkOptions (one device only)
};

struct SampleJobResult {
  SampleResult result;    ///< every sample of job.seeds, in seed order (resumed ones included)
  SampleOutputs written;  ///< the paths written ("" for those not written), shard names included
  int64_t resumed = 0;    ///< samples taken from an earlier, unfinished run
};

/// Checks the outputs against the job before any work: something to write (or result_only),
/// image-shaped samples for a grid or PNGs, writable paths. Throws Error naming the field
/// (outputs.npz, outputs.grid, outputs.png_dir, outputs.result_only) and the path or shape.
void check_sample_outputs(const SampleOutputs& outputs, const ImageDecoder& decoder, const Shard& shard);

/// Runs `job` with `sampler` over `models` (one per device; models[0] only when one), writing
/// options.outputs. With an npz or png_dir, finished chunks are kept in chunk_folder(<npz, else
/// png_dir>) (a shard's in its own) so that the same call after a kill resumes, on any number of
/// devices; the folder goes once the outputs are written. A shard with no seeds (fewer batches
/// than shards) writes an npz with no rows. Equal, sample for sample, to one uninterrupted run.
SampleJobResult run_sample_job(const Sampler& sampler, const std::vector<std::shared_ptr<const Model>>& models,
                               const SampleJob& job, const SampleJobOptions& options);

/// What a finished run_sample_job did, as `scoreflow sample --json` reports it: command, model,
/// model_summary, sampler, steps, nfe, sigmas, num_samples, shard, seed_range (of all_seeds),
/// batch, dtype, class, guidance, cond_rows, guidance_interval ("inf" for no upper end), guidance_rescale, latent,
/// sample_mean and sample_std (0 with no samples), resumed_samples and the outputs written (npz,
/// grid, out_dir). The caller adds how it chose the grid and the devices, and its times.
nlohmann::json sample_report(const std::shared_ptr<const Model>& model, const Sampler& sampler, const SampleJob& job,
                             const SampleJobOptions& options, const SampleJobResult& result);

}  // namespace scoreflow::jobs
