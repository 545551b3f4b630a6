#pragma once
/// The CPU fast path of TorchScript networks (docs/performance.md, "CPU"): open_model with
/// LoadOptions::optimize freezes the module and runs it through optimize_for_inference or with
/// oneDNN Graph fusion, checks it against the plain module on a probe batch, and caches the frozen
/// module on disk.
#include <memory>
#include <string>
#include <vector>

#include "scoreflow/model.h"

namespace scoreflow {

/// How open_model prepares a TorchScript network for the CPU.
struct LoadOptions {
  /// The module frozen (weights become constants; `forward` and the metadata's `features` method
  /// kept) and passed through optimize_for_inference (oneDNN convolutions with prepacked weights,
  /// fused ops), used for batches up to `optimize_max_batch`; larger batches run the plain module.
  /// Guarded: one probe batch runs both ways at load, and the optimised module is dropped with a
  /// one-line note on stderr when the two differ by more than `probe_tolerance` (relative L2).
  /// Ignored on CUDA and for builtin models.
  bool optimize = false;
  /// kTimedChoice: both modules are timed at load at batch 1, 8 and 16 on this machine and thread
  /// count (cpu_optimize.h, choose_max_batch), and the choice is kept in the cache folder, so that every
  /// later load on this machine uses the same module without timing again.
  static constexpr int kTimedChoice = -1;
  int optimize_max_batch = 8;
  double probe_tolerance = 1e-4;
  /// Which accelerated module: kOptimized, frozen + optimize_for_inference (the default); kFused,
  /// frozen and run with oneDNN Graph fusion, in LibTorch builds that have it (PyTorch's own, not
  /// Debian's 1.13). Fusion compiles the graph during the first calls of each batch size (about 30 s
  /// for the demo model on a 16-core host) and refuses some graphs (PyTorch 2.11: a U-Net's list of
  /// skip tensors), so it is only used when asked for (docs/performance.md, "CPU").
  enum class CpuModule { kOptimized, kFused };
  CpuModule cpu_module = CpuModule::kOptimized;
  /// Where the frozen module is cached, keyed by the model file's content hash (model_fingerprint),
  /// the LibTorch version and the kept methods; "" = default_model_cache_dir(), "none" = no cache.
  std::string cache_dir;
  /// Batch rows split over concurrent thread teams (CPU TorchScript networks, any module; not
  /// the fused module, not .pt2 packages, not calls that need gradients): a call of B >= 2 rows
  /// runs as K contiguous parts at once, each on its own thread with T / K intra-op threads (T:
  /// at::get_num_threads()). 0 = automatic (the default): K = min(B, T / 4) for calls of at least
  /// 32 rows, so off below 8 threads and for smaller batches, where it was measured to gain nothing
  /// or to lose (docs/performance.md, "CPU", session 17: 16 cores, 1.22-1.91x per call at batch 64,
  /// 0.88-1.26x at 32, 0.76-1.28x at 2-16); 1 = off; N = min(B, N, T). Outputs equal the unsplit
  /// call's to float rounding.
  int cpu_teams = 0;
};

/// open_model (model.h) with load options.
std::shared_ptr<Model> open_model(const std::string& spec, const std::string& meta_file,
                                  const std::vector<std::string>& overrides, torch::Device device,
                                  const LoadOptions& load);

/// LoadOptions::CpuModule by name, "optimized" or "fused"; throws Error naming field "cpu_module".
LoadOptions::CpuModule parse_cpu_module(const std::string& name);

/// Whether this LibTorch can build the fused CPU module (oneDNN Graph fusion: PyTorch's own
/// LibTorch builds have it, Debian's 1.13 does not).
bool cpu_fusion_available();

/// $SCOREFLOW_CACHE_DIR, else $XDG_CACHE_HOME/scoreflow, else $HOME/.cache/scoreflow ("" when none
/// of them is set).
std::string default_model_cache_dir();

/// What the CPU fast path did when `model` was opened.
struct CpuOptimization {
  bool active = false;                                ///< the accelerated module serves batches <= max_batch
  std::string module;                                 ///< which one: "optimized" or "fused" ("" when none was built)
  bool cache_hit = false;                             ///< the frozen module came from the cache
  static constexpr int kEveryBatch = 1 << 30;         ///< max_batch when it serves every batch size
  static constexpr int kTimedBatches[] = {1, 8, 16};  ///< where LoadOptions::kTimedChoice times both
  int max_batch = 0;
  double seconds = 0;          ///< freezing (or loading it from the cache), optimize_for_inference, the probe
  double probe_rel_diff = -1;  ///< relative L2 difference on the probe batch (-1: no probe)
  std::string cache_file;      ///< the cache file read or written ("" when none)
  std::string note;            ///< why it is not active, when it was asked for
  /// LoadOptions::kTimedChoice: "timed" (measured at this load) or "cached" (a stored choice), the
  /// file that keeps it, and the ms per call plain, optimised and fused at batch 1, 8 and 16 behind
  /// it (shorter where the accelerated module lost at a smaller batch; empty where it was not built).
  std::string choice;
  std::string choice_file;
  std::vector<double> plain_ms, optimized_ms, fused_ms;
  int cpu_teams = 1;  ///< LoadOptions::cpu_teams as the model was opened with (1 for other devices)
  /// 3x3 convolutions of the optimised module's forward routed to oneDNN's Winograd kernels (builds
  /// where LibTorch links the shared oneDNN; a shape oneDNN has no kernel for runs at::conv2d;
  /// docs/performance.md, "CPU", session 18).
  int winograd_convolutions = 0;
  /// 1x1 convolutions of the optimised module's forward run as matrix products on the NCHW tensors
  /// (same builds; session 19), and whose products: "oneDNN", or "LibTorch" where oneDNN's do not run
  /// and LibTorch has MKL (PyTorch's own LibTorch; session 23). "" when there are none.
  int pointwise_convolutions = 0;
  std::string pointwise_products;
  /// Group normalisations of the optimised module's forward that only feed SiLU, fused with it into
  /// one pass (docs/performance.md, "CPU", session 19); with those that also take the addition before
  /// them.
  int fused_group_norms = 0;
  /// Additions of two tensors of the optimised module's forward fused into the operator after them: a
  /// group norm + SiLU (the time embedding a residual block adds before it), or a scaling by a
  /// constant (the residual sum scaled by 1/sqrt(2)); docs/performance.md, "CPU", session 26.
  int fused_additions = 0;
  /// Why the optimised module runs without some of the convolutions it routes (oneDNN's Winograd ones,
  /// the 1x1 ones) although the build routes them: the module with all of them failed to build or on
  /// the probe, and the one without `onednn_convolutions_dropped` did not (sessions 21-22: Debian's
  /// oneDNN 2.6 inside PyTorch 2.11's LibTorch); "" otherwise.
  std::string onednn_convolutions_off;
  /// Which of them it runs without: "1x1", "Winograd" or "Winograd and 1x1" ("" when none).
  std::string onednn_convolutions_dropped;
  /// Where the dropped ones include the 1x1 ones, whose products those were: "oneDNN" or "LibTorch"
  /// (as `pointwise_products`); "" otherwise.
  std::string dropped_pointwise_products;
};

/// The fast path's state for a model from open_model (all fields default for models it does not
/// act on and models opened without LoadOptions::optimize).
CpuOptimization cpu_optimization(const Model& model);

/// Whether the fast path acts on `model`: a TorchScript network on the CPU. Builtins and compiled
/// .pt2 packages run as they are.
bool has_cpu_fast_path(const Model& model);

/// The most thread teams a call of `model` is split over at the current thread count
/// (LoadOptions::cpu_teams; 1: calls are not split).
int cpu_team_limit(const Model& model);

}  // namespace scoreflow
