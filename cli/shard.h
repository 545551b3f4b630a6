#pragma once
// Splitting one large job over processes and devices: `--shard i/n` or a launcher's variables pick
// this process's contiguous slice of whole batches; each shard writes its own file carrying a
// `scoreflow_shard` record (settings, i, n, slice) that `scoreflow merge` checks and combines.
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "cli/common.h"
#include "scoreflow/checkpoint.h"
#include "scoreflow/npy.h"

namespace scoreflow::cli {

/// This process's share of a job: shard `index` of `count`, and where that came from.
struct Shard {
  int64_t index = 0;
  int64_t count = 1;
  std::string source = "none";  ///< "--shard", "RANK/WORLD_SIZE", "SLURM_PROCID/SLURM_NTASKS", ...
  bool sharded() const { return count > 1; }
  /// "shard-0-of-2"
  std::string label() const;
  nlohmann::json to_json() const;
};

/// Parses "i/n" (0 <= i < n); `what` names the source in the error.
Shard parse_shard(const std::string& text, const std::string& what);

/// The explicit `--shard` value when given, else the first launcher that set its variables:
/// RANK/WORLD_SIZE (torchrun), OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE (mpirun),
/// SLURM_PROCID/SLURM_NTASKS (srun, when more than one task), SLURM_ARRAY_TASK_ID/
/// SLURM_ARRAY_TASK_COUNT (a job array; the index counts from SLURM_ARRAY_TASK_MIN). Else 0/1.
Shard resolve_shard(const std::string& flag);

/// Item range [begin, end) of `shard`: whole blocks of `block` items (so every network call sees
/// the same items as in an unsharded run), shard i taking blocks [i·B/n, (i+1)·B/n) of the
/// B = ceil(items/block); contiguous, in order, possibly empty when B < n.
std::pair<int64_t, int64_t> shard_range(int64_t items, int64_t block, int64_t index, int64_t count);
inline std::pair<int64_t, int64_t> shard_range(int64_t items, int64_t block, const Shard& s) {
  return shard_range(items, block, s.index, s.count);
}

/// "out.npz" -> "out.shard-0-of-2.npz"; `ext`, when given, replaces the extension
/// ("gamma.json" with ".npz" -> "gamma.shard-0-of-2.npz").
std::string shard_path(const std::string& path, const Shard& shard, const std::string& ext = "");

/// "cuda:0,cuda:1" or "cpu,cpu" -> the list (each checked by parse_device); empty text -> {}.
std::vector<std::string> parse_devices(const std::string& text);

/// The model opened once per entry of `devices` (once on options.device when `devices` is empty).
std::vector<std::shared_ptr<const Model>> open_on_devices(const ModelOptions& options,
                                                          const std::vector<std::string>& devices);

/// What identifies a model for a shard record: the builtin spec, or the file's hash.
std::string model_identity(const std::string& spec);

/// Runs `work(k)` for k = 0..n-1 on n threads and rethrows the first exception (lowest k).
void run_on_threads(int64_t n, const std::function<void(int64_t)>& work);

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

}  // namespace scoreflow::cli
