#pragma once
// sample over several devices in one process: the seeds are split in whole batches, one thread and
// one model copy per device, and the parts are joined in seed order (cli/shard.h says why whole
// batches keep the result equal to a one-device run).
#include <memory>
#include <string>
#include <vector>

#include "cli/sample_chunks.h"

namespace scoreflow::cli {

/// Where a multi-device run keeps its finished chunks: one ChunkStore per device's seed range
/// under `dir` (empty: nothing kept).
struct DeviceStores {
  std::string dir;
  io::Settings settings;
  bool overwrite = false;
  std::string option;
  /// Deletes the folder (nothing when `dir` is empty): the caller's outputs are written.
  void remove() const;
};

/// run_chunked over `job` split among `models` (models[k] lives on its own device; job.device is
/// ignored). The chunks under `stores.dir` are left in place: the caller removes the folder once
/// its own output is written, so that a kill before then loses nothing. `on_chunk` gets seed indices of the whole job;
/// it and `on_batch` (done = samples finished over all devices) may be called from any of the threads, one call at a
/// time.
ChunkedResult run_on_devices(const Sampler& sampler, const std::vector<std::shared_ptr<const Model>>& models,
                             const SampleJob& job, const DeviceStores& stores, const ChunkCallback& on_chunk,
                             const BatchCallback& on_batch);

}  // namespace scoreflow::cli
