#pragma once
// What the CLI adds to the job layer (scoreflow/jobs.h): --devices parsing, one model copy per
// device, and the chunk store named after a command's output.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/common.h"
#include "scoreflow/checkpoint.h"
#include "scoreflow/jobs.h"
#include "scoreflow/jobs/sample.h"

namespace scoreflow::cli {

/// jobs::resolve_shard for --shard, with an explicit choice's source shown as "--shard".
jobs::Shard resolve_shard_flag(const std::string& flag);

/// --devices (field `devices`): jobs::parse_devices.
using jobs::parse_devices;

/// The model opened once per entry of `devices` (once on options.device when `devices` is empty).
std::vector<std::shared_ptr<const Model>> open_on_devices(const ModelOptions& options,
                                                          const std::vector<std::string>& devices);

/// "note: resumed ...: N finished chunks reused" on stderr when the store loaded any.
void note_resumed(const io::ChunkStore* store);

}  // namespace scoreflow::cli
