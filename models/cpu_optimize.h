#pragma once
// The CPU fast path of a TorchScript network (docs/performance.md, "CPU"): the module frozen and
// passed through optimize_for_inference, the frozen module cached on disk.
#include <torch/script.h>

#include <string>
#include <vector>

namespace scoreflow {

/// `module` (eval mode) frozen with `methods` kept (forward first; freezing drops every method it
/// is not told to keep), then optimize_for_inference on each of them: oneDNN convolutions with
/// prepacked weights and fused ops. The frozen module is read from `cache_file` when that file
/// loads and has the methods, else frozen here and written there (atomically; a cache that cannot
/// be written is skipped) — the oneDNN constants of the final module cannot be serialised, so
/// optimize_for_inference runs at every load. `cache_hit` says which. Throws what LibTorch throws.
torch::jit::Module optimize_for_cpu(const torch::jit::Module& module, const std::vector<std::string>& methods,
                                    const std::string& cache_file, bool* cache_hit);

/// `dir`/<content hash>-<hash of the LibTorch version and methods>.frozen.pt, or "" when `dir` is
/// "" or "none".
std::string cpu_cache_file(const std::string& dir, const std::string& content_hash,
                           const std::vector<std::string>& methods);

}  // namespace scoreflow
