#pragma once
// The CPU fast path of a TorchScript network (docs/performance.md, "CPU"): the module frozen (cached
// on disk), then either passed through optimize_for_inference or run with oneDNN Graph fusion.
#include <torch/script.h>

#include <optional>
#include <string>
#include <vector>

#include "models/winograd_conv.h"

namespace scoreflow {

/// `module` (eval mode) frozen with `methods` kept (forward first; freezing drops every method it
/// is not told to keep): read from `cache_file` when that file loads and has the methods, else
/// frozen here and written there (atomically; a cache that cannot be written is skipped).
/// `cache_hit` says which. Every call gives a module of its own. Throws what LibTorch throws.
torch::jit::Module frozen_for_cpu(const torch::jit::Module& module, const std::vector<std::string>& methods,
                                  const std::string& cache_file, bool* cache_hit);

/// `frozen` (frozen_for_cpu) through optimize_for_inference, on each of `methods`: oneDNN
/// convolutions with prepacked weights and fused ops; where LibTorch has oneDNN but not MKL
/// (Debian's LibTorch, whose BLAS is the reference one), batched products (aten::bmm, matmul,
/// baddbmm and einsum) also run on oneDNN (detail::bmm_onednn). Its oneDNN constants cannot be
/// serialised, so this runs at every load. The 3x3 and 1x1 convolutions `onednn_convolutions` names go
/// to oneDNN's Winograd and NCHW kernels first, in builds that have them (models/winograd_conv.h).
/// Changes and returns `frozen`.
torch::jit::Module optimize_for_cpu(torch::jit::Module frozen, const std::vector<std::string>& methods,
                                    detail::OneDnnConvolutions onednn_convolutions = {});

namespace detail {

/// torch.bmm(a, b) for float CPU tensors as one 1x1 oneDNN convolution per batch row, which runs at
/// 20x the reference BLAS's speed on attention-sized products (docs/performance.md, "CPU", session
/// 17); products of fewer than 2^17 multiply-adds per row and any other input go to at::bmm. The
/// TorchScript operator scoreflow::bmm_onednn.
torch::Tensor bmm_onednn(const torch::Tensor& a, const torch::Tensor& b);

/// torch.matmul(a, b): bmm_onednn for two 3-D tensors with the same batch, at::matmul otherwise
/// (scoreflow::matmul_onednn).
torch::Tensor matmul_onednn(const torch::Tensor& a, const torch::Tensor& b);

/// torch.baddbmm(self, a, b, beta=beta, alpha=alpha) through bmm_onednn (scoreflow::baddbmm_onednn;
/// the attention scores of diffusers' networks).
torch::Tensor baddbmm_onednn(const torch::Tensor& self, const torch::Tensor& a, const torch::Tensor& b,
                             const c10::Scalar& beta, const c10::Scalar& alpha);

/// torch.einsum(equation, operands) through bmm_onednn where it is a batched product of two 3-D
/// operands, in any letter order ("ncq,nck->nqk", EDM's attention); at::einsum otherwise
/// (scoreflow::einsum_onednn).
torch::Tensor einsum_onednn(const std::string& equation, const std::vector<torch::Tensor>& operands);

/// The nodes of `kind` ("aten::conv2d") in `graph`, nested blocks included.
std::vector<torch::jit::Node*> nodes_of_kind(torch::jit::Graph& graph, const char* kind);

/// Whether optimize_for_cpu routes aten::bmm, matmul, baddbmm and einsum through these with this
/// LibTorch.
bool routes_bmm_through_onednn();

}  // namespace detail

/// `dir`/<content hash>-<hash of the LibTorch version and methods>.frozen.pt, or "" when `dir` is
/// "" or "none".
std::string cpu_cache_file(const std::string& dir, const std::string& content_hash,
                           const std::vector<std::string>& methods);

/// The CPU module chosen by timing at load (LoadOptions::kTimedChoice): which accelerated module
/// ("optimized" or "fused"), the largest batch it serves (0, 1, 8 or CpuOptimization::kEveryBatch)
/// and the milliseconds per call that decided it, plain, optimised and fused at batch 1, 8 and 16
/// (shorter where a module lost at a smaller batch; empty where it was not built).
struct CpuChoice {
  int max_batch = 0;
  std::vector<double> plain_ms, optimized_ms;
  std::vector<double> fused_ms;
  std::string module = "optimized";
};

/// The rule: the accelerated module (`timing.module`) serves batch 1 when it was faster than the
/// plain module there, up to batch 8 when it was faster at 8 too, and every batch when it was also
/// faster at 16 (a network whose attention products it moves to oneDNN; docs/performance.md, "CPU",
/// session 17).
int choose_max_batch(const CpuChoice& timing);

/// Where the choice for `frozen_cache_file` (cpu_cache_file) and accelerated `module` ("optimized"
/// or "fused") on `threads` threads of this machine's CPU model is kept: "" when there is no cache.
std::string cpu_choice_file(const std::string& frozen_cache_file, int threads, const std::string& module = "optimized");

/// The choice stored in `file`, or nothing when it is absent or unreadable.
std::optional<CpuChoice> read_cpu_choice(const std::string& file);

/// Stores `choice` in `file` unless a choice is already there, and returns the stored one: the first
/// process to finish timing decides for every later load (and for processes timing at the same
/// moment), so that runs on one machine use the same module.
CpuChoice store_cpu_choice(const std::string& file, const CpuChoice& choice);

}  // namespace scoreflow
