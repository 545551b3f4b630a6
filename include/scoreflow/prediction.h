#pragma once
/// The one place that knows what networks predict (docs/design.md §2): network output F at input
/// x_t = α·x (x in σ-space) → D(x, σ).
#include <torch/types.h>

#include "scoreflow/model.h"

namespace scoreflow {

/// alpha, sigma: 0-dim CPU float64 tensors (one value for the batch) or [B, 1, ...] tensors on
/// x's device. Returns D in x's dtype.
torch::Tensor denoised_from_output(Prediction prediction, const torch::Tensor& x, const torch::Tensor& output,
                                   const torch::Tensor& alpha, const torch::Tensor& sigma);

}  // namespace scoreflow
