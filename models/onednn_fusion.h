#pragma once
// oneDNN Graph fusion of TorchScript graphs on the CPU (docs/performance.md, "CPU"): the third CPU
// module of the fast path. PyTorch's own LibTorch builds have it; Debian's 1.13 does not, so it is
// found at run time and the fast path works without it.
namespace scoreflow::detail {

/// Whether this process's LibTorch has oneDNN Graph fusion.
bool onednn_fusion_available();

/// While one is alive on a thread, the TorchScript graphs that LibTorch's profiling executor
/// optimises on that thread are fused into oneDNN Graph partitions; graphs optimised elsewhere (the
/// plain module, feature networks, other threads) are not. An executor optimises a graph during
/// its first calls for a new input shape, so every call of a fused module runs inside one.
class OnednnFusionScope {
 public:
  OnednnFusionScope();
  ~OnednnFusionScope();
  OnednnFusionScope(const OnednnFusionScope&) = delete;
  OnednnFusionScope& operator=(const OnednnFusionScope&) = delete;

 private:
  bool previous_;
};

}  // namespace scoreflow::detail
