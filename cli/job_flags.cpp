#include "cli/job_flags.h"

#include "scoreflow/error.h"
#include "scoreflow/jobs/sample.h"

namespace scoreflow::cli {

jobs::Shard resolve_shard_flag(const std::string& flag) {
  jobs::Shard shard = jobs::resolve_shard(flag);
  if (shard.source == "shard") shard.source = "--shard";
  return shard;
}

std::vector<std::shared_ptr<const Model>> open_on_devices(const ModelOptions& options,
                                                          const std::vector<std::string>& devices) {
  auto open = [&](const std::string& device) {
    ModelOptions copy = options;
    copy.device = device;
    return std::shared_ptr<const Model>(copy.open());
  };
  return jobs::open_on_devices(open, devices, options.device);
}

void note_resumed(const io::ChunkStore* store) {
  if (store) jobs::note_resumed(store->dir(), store->loaded(), "chunks");
}

}  // namespace scoreflow::cli
