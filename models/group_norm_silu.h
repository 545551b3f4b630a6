#pragma once
// Group normalisation followed by SiLU as one pass over the tensor, for the optimised CPU module
// (docs/performance.md, "CPU", session 19). Every ResNet block of a DDPM/EDM U-Net normalises and
// then applies SiLU; LibTorch runs them as two operators, and Debian's LibTorch runs SiLU's
// exponential one element at a time (about 0.5 ns per element on the development machine, ten times
// an addition). Here the normalisation's affine map and SiLU are applied in one vectorised loop.
// The additions before such a pass, and sums only scaled by a constant, are fused the same way
// (session 26).
#include <torch/script.h>

#include <memory>

namespace scoreflow::detail {

/// torch.nn.functional.silu(torch.group_norm(input, groups, weight, bias, eps)) for a float32 CPU
/// `input` of shape [N, C, ...]: group statistics in double (one pass over each group, about its first
/// element), then per element the affine map, taken about the float nearest the group's mean (so a
/// mean far from zero costs no precision), and SiLU, whose exponential is good to about one unit in
/// the last place: the result equals LibTorch's to float rounding (about 1e-7 relative), on any
/// thread count. Other dtypes and devices, and calls that need gradients, go to LibTorch's two
/// operators. Throws what torch.group_norm throws for bad shapes. The TorchScript operator
/// scoreflow::group_norm_silu.
torch::Tensor group_norm_silu(const torch::Tensor& input, int64_t groups, const c10::optional<torch::Tensor>& weight,
                              const c10::optional<torch::Tensor>& bias, double eps);

/// silu(group_norm(input + shift)), `shift` (or `input`: the sum is the same) one value per sample (or
/// one for all) and channel ([N or 1, C, 1, ...], the time embedding a DDPM/EDM residual block adds
/// before its second normalisation): the fused kernel above with the addition folded into its passes,
/// the group statistics taken of the sum in double. Other shifts (and what group_norm_silu leaves to
/// LibTorch) go to LibTorch's three operators. The TorchScript operator scoreflow::add_group_norm_silu.
torch::Tensor add_group_norm_silu(const torch::Tensor& input, const torch::Tensor& shift, int64_t groups,
                                  const c10::optional<torch::Tensor>& weight, const c10::optional<torch::Tensor>& bias,
                                  double eps);

/// (self + other) / scale, or * scale where `divide` is false, in one pass for float32 CPU tensors of
/// one shape, both contiguous (the residual sum an EDM/DDPM++ block scales by 1/sqrt(2)); otherwise
/// LibTorch's two operators. Computed in float as they compute it. The TorchScript operator
/// scoreflow::add_scale.
torch::Tensor add_scale(const torch::Tensor& self, const torch::Tensor& other, const at::Scalar& scale, bool divide);

/// Rewrites, in `graph`, each aten::add(a, b, 1) of two tensors (or aten::add_ on a convolution's or
/// linear layer's output that nothing else reads but for its metadata, as EDM writes it) that feeds
/// only a group norm that only feeds SiLU (besides reads of the sum's shape, dtype or device, such as
/// the checks torch.nn.functional.group_norm scripts) into scoreflow::add_group_norm_silu, and each
/// that only feeds a division or multiplication by a constant number into scoreflow::add_scale; returns
/// how many. Run before fuse_group_norm_silu.
int fuse_additions(std::shared_ptr<torch::jit::Graph>& graph);

/// How many scoreflow::add_group_norm_silu and scoreflow::add_scale calls `graph` holds.
int count_fused_additions(torch::jit::Graph& graph);

/// Rewrites, in `graph`, every aten::group_norm whose only use is an aten::silu (or silu_) into
/// scoreflow::group_norm_silu; returns how many.
int fuse_group_norm_silu(std::shared_ptr<torch::jit::Graph>& graph);

/// How many scoreflow::group_norm_silu and scoreflow::add_group_norm_silu calls `graph` holds.
int count_group_norm_silu(torch::jit::Graph& graph);

/// How many threads at::parallel_for spreads `tasks` one-element tasks over when called from this
/// file, which is compiled like every library file that calls it: 1 where the build compiled them
/// without OpenMP (at::parallel_for then runs the whole range on the calling thread; CMakeLists.txt).
int parallel_for_threads(int64_t tasks);

}  // namespace scoreflow::detail
