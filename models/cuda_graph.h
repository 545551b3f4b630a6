#pragma once
// CUDA-graph replay of a fixed-shape computation (the network call): inputs are copied into static
// buffers, the captured kernels are replayed, and the static output is returned. Compiled to a
// stub (available() == false) when LibTorch has no CUDA.
#include <torch/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace scoreflow {

class GraphRunner {
 public:
  using Fn = std::function<torch::Tensor(const std::vector<torch::Tensor>&)>;
  /// True when this build can capture CUDA graphs.
  static bool available();

  GraphRunner();
  ~GraphRunner();
  GraphRunner(const GraphRunner&) = delete;
  GraphRunner& operator=(const GraphRunner&) = delete;

  /// fn(inputs) through a graph captured for these input shapes/dtypes (the first call with a
  /// new shape warms up and captures; later calls copy and replay). Inputs must be CUDA tensors
  /// on one device. The returned tensor is the static output: valid until the next run(), so
  /// callers that keep it must clone it. Throws when capture fails (e.g. fn synchronises).
  torch::Tensor run(const std::vector<torch::Tensor>& inputs, const Fn& fn);
  /// As run(), but `fill` writes the static inputs in place (e.g. a scaled x straight into its
  /// buffer, a filled time vector), saving the copies; `like` gives their shapes and dtypes.
  using Fill = std::function<void(std::vector<torch::Tensor>& static_inputs)>;
  torch::Tensor run_filled(const std::vector<torch::Tensor>& like, const Fill& fill, const Fn& fn);
  /// Replays the graph captured for `inputs`' shapes without copying inputs (benchmarks: the
  /// network alone from a graph). Throws if none was captured.
  torch::Tensor replay(const std::vector<torch::Tensor>& inputs);
  /// Number of graphs captured so far.
  int captured() const;

 private:
  struct Entry;
  std::string key(const std::vector<torch::Tensor>& inputs) const;
  std::map<std::string, std::unique_ptr<Entry>> graphs_;
};

}  // namespace scoreflow
