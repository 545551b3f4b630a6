#pragma once
// What TorchScript archives and AOTInductor packages share (docs/design.md §3): the network's raw
// output, checked against x's shape, turned into D(x, σ) (and the second-moment head) through the
// metadata's prediction type and the schedule's α(σ). Each kind only runs its network.
#include <torch/types.h>

#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "scoreflow/model.h"

namespace scoreflow {

class NetworkModel : public Model {
 public:
  std::string name() const override { return path_; }
  const ModelMetadata& metadata() const override { return meta_; }
  torch::Tensor denoise(const torch::Tensor& x, const std::vector<double>& sigma,
                        const torch::Tensor& labels) const override {
    return denoise_conditioned(x, sigma, labels, {});
  }
  torch::Tensor denoise_conditioned(const torch::Tensor& x, const std::vector<double>& sigma,
                                    const torch::Tensor& labels,
                                    const std::vector<torch::Tensor>& conds) const override;
  std::pair<torch::Tensor, torch::Tensor> denoise_with_head(const torch::Tensor& x, const std::vector<double>& sigma,
                                                            const torch::Tensor& labels) const override;

 protected:
  NetworkModel(std::string path, ModelMetadata meta) : path_(std::move(path)), meta_(std::move(meta)) {}

  /// The network's raw output for x at σ (one value for the batch, or one per row), on x's device;
  /// empty `conds` means zeros for every declared condition.
  virtual torch::Tensor network_output(const torch::Tensor& x, const std::vector<double>& sigma,
                                       const torch::Tensor& labels, const std::vector<torch::Tensor>& conds) const = 0;
  /// Whether gradients flow through the network (false for compiled packages: then D(x, σ) is
  /// computed without autograd, as a whole, rather than with a gradient through x alone).
  virtual bool has_autograd() const { return true; }
  /// Who returned a wrongly shaped output, for the message: "forward", "the package".
  virtual const char* output_source() const = 0;
  /// `result`, a view of the network's output `out`, as a caller may keep it (a CUDA graph's static
  /// output is overwritten by the next replay).
  virtual torch::Tensor own(const torch::Tensor& result, const torch::Tensor& out) const { return result; }

  /// Whether a call on x records autograd: the network has it, x requires grad and grad mode is on.
  bool keep_grad(const torch::Tensor& x) const;
  /// v as a [len(v), 1, ...] column in x's dtype and device (one value per batch row).
  static torch::Tensor column(const std::vector<double>& v, const torch::Tensor& x);

  std::string path_;
  ModelMetadata meta_;

 private:
  /// α(σ), σ (scalars for one σ, else [B, 1, ...] columns) and the shape-checked output in x's dtype.
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> forward(const torch::Tensor& x,
                                                                  const std::vector<double>& sigma,
                                                                  const torch::Tensor& labels,
                                                                  const std::vector<torch::Tensor>& conds) const;
};

}  // namespace scoreflow
