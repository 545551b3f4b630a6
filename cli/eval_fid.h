#pragma once
// eval fid's pieces (cli/eval_fid.cpp reads flags and runs; cli/eval_fid_shard.cpp samples a --model
// and writes a shard's partial statistics).
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "cli/common.h"
#include "cli/sampling_flags.h"
#include "scoreflow/fid.h"
#include "scoreflow/jobs.h"

namespace scoreflow::cli::fid {

struct Options {
  SamplingFlags s;  // --model: sampler, grid, seeds, guidance, conditioning, decoder
  ModelOptions model;
  std::string features, ref, ref_data, samples, save_stats, out, data_range = "-1,1";
  std::string shard, devices;  // scoreflow/jobs.h
  CLI::Option* device_option = nullptr;
  int64_t limit = 0;
  jobs::FidOptions fid;  // --batch, --kid, --kid-subsets, --kid-subset-size, --projections
  bool json = false, overwrite = false;
};

/// Images sampled from --model (FD/KID see images: a latent model's samples go through its
/// decoder), and what identifies the job.
struct Sampled {
  torch::Tensor images;  // undefined for a shard with no seeds
  double lo = -1, hi = 1;
  int64_t total = 0, begin = 0, end = 0;  // the seeds sampled: [begin, end) of total
  io::Settings record;                    // a shard's record of the job
  nlohmann::json sampling;
};

/// --seeds from --model on one device or split over --devices (a shard's rows of them with
/// `shard`); with --out (and no shard), finished batches are kept in `store`, OUT.parts, so that a
/// killed run resumes; the caller removes it.
Sampled sample_images(const Options& o, const std::vector<std::string>& devices, const jobs::Shard* shard,
                      std::optional<io::ChunkStore>& store);
/// The feature network on each of --devices, or on --device.
jobs::FeatureNetworks feature_networks(const Options& o, const std::vector<std::string>& devices);
/// --shard: feature sums of this shard's rows (whole batches) of the samples (from --model or
/// --samples), or of --ref-data when there are no samples, written for scoreflow merge.
void run_shard(const Options& o, const jobs::Shard& shard, const std::vector<std::string>& devices, double lo,
               double hi, std::chrono::steady_clock::time_point start);

}  // namespace scoreflow::cli::fid
