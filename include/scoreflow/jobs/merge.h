#pragma once
/// `scoreflow merge` as a library call: the shard files of a sharded job (sample npz, Γ statistics,
/// feature statistics) checked, combined into the file one unsharded run writes (merge_shards), and,
/// for feature statistics, their FD against a reference.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace scoreflow::jobs {

struct MergeResult {
  /// merge_shards' summary and kind, num_shards, total, inputs (in shard order), out; for fid shards
  /// with a reference, reference (its path) and fd.
  nlohmann::json summary;
  /// fid shards, no `ref` given: the reference the shards recorded when it is gone or changed (then
  /// no FD); "" otherwise.
  std::string stale_ref;
};

/// Merges `inputs` (the shard files, any order) into `out`. The FD of fid shards is against `ref`,
/// or when empty the reference the shards were run with (when it still has the recorded hash).
/// Throws Error before writing: no inputs, `out` among them, an incomplete or mixed shard set
/// (read_shard_set), `ref` (the field) given for shards other than fid, a reference of another
/// feature dimension.
MergeResult merge_files(const std::vector<std::string>& inputs, const std::string& out, const std::string& ref = "");

}  // namespace scoreflow::jobs
