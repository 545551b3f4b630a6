#pragma once
// estimate-gamma split over shards and devices: each shard keeps every batch's (count, Σv, M2) per
// timestep; replaying them in batch order through GammaAccumulator reproduces an unsharded Γ file
// bit for bit.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/shard.h"
#include "scoreflow/gamma_estimation.h"

namespace scoreflow::cli {

/// Per timestep, the statistics of the batches a shard ran, in batch order.
using GammaBatches = std::map<int64_t, std::vector<analytic::GammaBatchStats>>;

/// Runs `job` (its first_batch/end_batch give the range) over `models`, one per device, each on its
/// own thread with a contiguous run of whole batches; `on_timestep(t)` after each timestep of each
/// device (one call at a time).
GammaBatches estimate_gamma_batches(const std::vector<std::shared_ptr<const Model>>& models, const io::Dataset& data,
                                    const GammaEstimation& job, const std::function<void()>& on_timestep);

/// Replays `batches` into `table` (timesteps with no batch are left unset).
void replay_gamma(const GammaBatches& batches, analytic::GammaTable& table);

/// A shard file: the record (with "gamma_meta" and "num_steps") and arrays timesteps [T], and
/// batch_count / batch_sum / batch_m2 [T, B] over the shard's B batches.
void write_gamma_shard(const std::string& path, const nlohmann::json& record, const GammaBatches& batches);

/// estimate-gamma's --shard path: estimates this shard's batches (over `models`, one per device)
/// and writes them to `path`; returns a JSON summary.
nlohmann::json run_gamma_shard(const std::vector<std::shared_ptr<const Model>>& models, const std::string& model_spec,
                               const io::Dataset& data, const GammaEstimation& job, const analytic::GammaMeta& meta,
                               const Shard& shard, const std::string& path);

/// Merges gamma shard files (already checked by check_shard_set, given in shard order) into the Γ
/// table an unsharded run writes.
analytic::GammaTable merge_gamma_shards(const std::vector<std::map<std::string, io::NpyArray>>& files,
                                        const std::vector<nlohmann::json>& records,
                                        const std::vector<std::string>& paths);

}  // namespace scoreflow::cli
