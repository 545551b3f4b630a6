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

  /// fn(static inputs) through a graph captured for the shapes/dtypes of `like` (CUDA tensors on
  /// one device): the first call with a new shape allocates the static inputs, lets `fill` write
  /// them (e.g. a scaled x straight into its buffer, a filled time vector), warms up and captures;
  /// later calls fill and replay. The returned tensor is the static output: valid until the next
  /// run(), so callers that keep it must clone it. Throws when capture fails (e.g. fn synchronises).
  using Fill = std::function<void(std::vector<torch::Tensor>& static_inputs)>;
  torch::Tensor run(const std::vector<torch::Tensor>& like, const Fill& fill, const Fn& fn);
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
