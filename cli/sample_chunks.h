#pragma once
// sample's resumable core: seeds are sampled in chunks of --batch; with a ChunkStore each finished
// chunk is kept on disk, and a re-run after a kill loads those instead of sampling them again.
#include <functional>
#include <memory>

#include "scoreflow/checkpoint.h"
#include "scoreflow/run.h"

namespace scoreflow::cli {

struct ChunkedResult {
  SampleResult result;
  int64_t resumed = 0;  ///< samples loaded from chunks of an earlier run
};

/// Called with each chunk's first seed index and its samples [count, ...shape] (float32, CPU),
/// whether sampled now or loaded; in seed order.
using ChunkCallback = std::function<void(int64_t begin, const torch::Tensor& samples)>;

/// run_sampler over `job`, one chunk of job.batch seeds at a time. `store` may be null (nothing
/// kept). Chunks are keyed by their seed-index range, so a re-run with another --batch still
/// reuses them (samples do not depend on the batch).
ChunkedResult run_chunked(const Sampler& sampler, std::shared_ptr<const Model> model, const SampleJob& job,
                          io::ChunkStore* store, const ChunkCallback& on_chunk, const BatchCallback& on_batch,
                          const StepCallback& on_step);

}  // namespace scoreflow::cli
