#include "models/onednn_fusion.h"

#include <dlfcn.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/pass_manager.h>

#include <memory>

namespace scoreflow::detail {
namespace {

using FuseGraph = void (*)(std::shared_ptr<torch::jit::Graph>&);

/// torch::jit::fuser::onednn::fuseGraph, the pass behind Python's torch.jit.enable_onednn_fusion,
/// looked up by its symbol: a LibTorch built without oneDNN Graph lacks it (and its header still
/// declares it, so a direct call would not link there).
FuseGraph onednn_fuse_graph() {
  static const FuseGraph fn = reinterpret_cast<FuseGraph>(
      ::dlsym(RTLD_DEFAULT, "_ZN5torch3jit5fuser6onednn9fuseGraphERSt10shared_ptrINS0_5GraphEE"));
  return fn;
}

thread_local bool onednn_fusing = false;

/// Python's switch registers the pass for every graph of the process; this one runs it only for
/// graphs optimised inside an OnednnFusionScope. Registered once, at the first scope.
void register_onednn_pass() {
  static const bool registered = [] {
    torch::jit::registerPrePass([](std::shared_ptr<torch::jit::Graph>& graph) {
      if (onednn_fusing) onednn_fuse_graph()(graph);
    });
    return true;
  }();
  (void)registered;
}

}  // namespace

bool onednn_fusion_available() { return onednn_fuse_graph() != nullptr; }

OnednnFusionScope::OnednnFusionScope() : previous_(onednn_fusing) {
  if (!onednn_fusion_available()) return;
  register_onednn_pass();
  onednn_fusing = true;
}

OnednnFusionScope::~OnednnFusionScope() { onednn_fusing = previous_; }

}  // namespace scoreflow::detail
