#pragma once
// Resumable commands. sample's core: seeds are sampled in chunks of --batch; with a ChunkStore each
// finished chunk is kept on disk, and a re-run after a kill loads those instead of sampling them
// again. eval and compare keep their finished pieces through the same ChunkStore (io::Memo).
#include <functional>
#include <memory>
#include <optional>

#include "cli/common.h"
#include "scoreflow/checkpoint.h"
#include "scoreflow/run.h"

namespace scoreflow::cli {

/// What identifies an input in a manifest: a `builtin:` spec as written, "(none)" for an empty
/// path, a hash of the names and sizes of a folder's files, or a hash of a file's bytes.
std::string input_fingerprint(const std::string& path);

/// The settings every resumable command shares: model file hash, resolved metadata, device kind.
io::Settings model_settings(const ModelOptions& options, const Model& model);

/// "%.17g" values joined by commas (grids and noise levels, exact).
std::string exact_list(const std::vector<double>& values);

/// The chunk folder `output.parts` for a command whose final output is `output`, or nothing when
/// no output file is given (then nothing is kept). `option` names the flag, for messages.
std::optional<io::ChunkStore> chunks_for(const std::string& output, io::Settings settings, bool overwrite,
                                         const std::string& option);

/// "note: resumed ...: N finished chunks reused" on stderr when the store loaded any.
void note_resumed(const io::ChunkStore* store);
/// The same note for `count` finished `what` (e.g. "samples") reused from `dir`, when count > 0.
void note_resumed(const std::string& dir, int64_t count, const char* what);

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
