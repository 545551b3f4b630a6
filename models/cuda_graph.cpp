#include "models/cuda_graph.h"

#include <sstream>

#include "scoreflow/error.h"

#ifdef SCOREFLOW_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace scoreflow {

#ifdef SCOREFLOW_WITH_CUDA
struct GraphRunner::Entry {
  std::vector<torch::Tensor> inputs;
  torch::Tensor output;
  at::cuda::CUDAGraph graph;
};
bool GraphRunner::available() { return true; }
#else
struct GraphRunner::Entry {};
bool GraphRunner::available() { return false; }
#endif

GraphRunner::GraphRunner() = default;
GraphRunner::~GraphRunner() = default;
int GraphRunner::captured() const { return static_cast<int>(graphs_.size()); }

std::string GraphRunner::key(const std::vector<torch::Tensor>& inputs) const {
  std::ostringstream os;
  for (const auto& t : inputs) os << t.device() << ':' << t.scalar_type() << ':' << t.sizes() << ';';
  return os.str();
}

torch::Tensor GraphRunner::replay(const std::vector<torch::Tensor>& inputs) {
#ifdef SCOREFLOW_WITH_CUDA
  auto it = graphs_.find(key(inputs));
  if (it == graphs_.end()) fail("no CUDA graph captured for these input shapes");
  it->second->graph.replay();
  return it->second->output;
#else
  fail("this scoreflow build has no CUDA support, so no CUDA graphs");
#endif
}

torch::Tensor GraphRunner::run(const std::vector<torch::Tensor>& inputs, const Fill& fill, const Fn& fn) {
#ifdef SCOREFLOW_WITH_CUDA
  const std::string k = key(inputs);
  auto it = graphs_.find(k);
  if (it == graphs_.end()) {
    for (const auto& t : inputs)
      if (!t.is_cuda()) fail("CUDA graphs need CUDA inputs (got one on ", t.device(), ")");
    auto entry = std::make_unique<Entry>();
    for (const auto& t : inputs) entry->inputs.push_back(torch::empty_like(t, at::MemoryFormat::Contiguous));
    fill(entry->inputs);
    c10::cuda::CUDAGuard device_guard(inputs.front().device());
    // Capture happens on a side stream that first waits for the work queued so far; warm-up runs
    // there too, so that lazy initialisation (cuDNN plans, TorchScript profiling and fusion) is
    // done before capture rather than recorded into it.
    c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream();
    c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
    {
      c10::cuda::CUDAStreamGuard stream_guard(side);
      side.synchronize();
      current.synchronize();
      for (int i = 0; i < 3; ++i) fn(entry->inputs);
      side.synchronize();
      entry->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
      try {
        entry->output = fn(entry->inputs);
        entry->graph.capture_end();
      } catch (...) {
        try {
          entry->graph.capture_end();
        } catch (...) {
        }
        throw;
      }
    }
    current.synchronize();
    it = graphs_.emplace(k, std::move(entry)).first;
  }
  Entry& e = *it->second;
  fill(e.inputs);
  e.graph.replay();
  return e.output;
#else
  fail("this scoreflow build has no CUDA support, so no CUDA graphs (build against a CUDA LibTorch)");
#endif
}

}  // namespace scoreflow
