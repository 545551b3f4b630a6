#pragma once
// 3x3 convolutions through oneDNN's Winograd kernels (docs/performance.md, "CPU", session 18): the
// same convolution with about a quarter of the multiply-adds, for the optimised CPU module.
// PyTorch's own convolutions always take oneDNN's direct algorithm, so scoreflow calls oneDNN itself.
// 1x1 convolutions go to oneDNN directly on the NCHW tensors (session 19): as matrix products, without
// the conversions to and from oneDNN's blocked layout that optimize_for_inference puts around them;
// where oneDNN's products do not run (inside PyTorch's own LibTorch, session 23), to LibTorch's.
// Built where LibTorch links the shared oneDNN library (Debian's LibTorch) and its headers are
// installed (libdnnl-dev), so that both use one copy of it; elsewhere winograd_available() is false
// and only the route of 1x1 convolutions to LibTorch's products is left.
#include <torch/script.h>

#include <memory>
#include <string>
#include <vector>

namespace scoreflow::detail {

/// Whether this build has oneDNN's Winograd and pointwise convolutions (and optimize_for_cpu uses
/// them). Without them it still routes 1x1 convolutions to conv2d_pointwise where
/// libtorch_products_fast().
bool winograd_available();

/// torch.conv2d(input, weight, bias, stride=1, padding=padding, dilation=1, groups=1) for a 3x3
/// `weight`, through oneDNN's Winograd algorithm (with fewer than 16 input channels, which Winograd would
/// pad to 16, oneDNN's direct algorithm): its float32 rounding differs from the direct
/// convolution's by about 1e-6 of the output's scale. Transformed weights are kept per weight tensor
/// (and per oneDNN layout) while that tensor lives; those of a tensor that has died are freed when the
/// next new weight tensor comes (a module's are all built in its first calls). Any input oneDNN has no Winograd kernel
/// for (a CPU without AVX-512, channel counts it does not block, float64, gradients) goes to at::conv2d. The
/// TorchScript operator scoreflow::conv2d_winograd.
torch::Tensor conv2d_winograd(const torch::Tensor& input, const torch::Tensor& weight,
                              const c10::optional<torch::Tensor>& bias, std::vector<int64_t> padding);

/// For tests: while set, conv2d_winograd (`winograd`) and conv2d_pointwise (`pointwise`) throw as oneDNN
/// did inside PyTorch 2.11's LibTorch ("could not execute a primitive"), to check that the optimised
/// module is then built without them: where a kernel runs, oneDNN's error comes from running the
/// convolution and is reported as a real one is (naming the kernel, shapes and status); elsewhere the
/// call throws instead of at::conv2d. With `products`, pointwise_available() says oneDNN's products
/// do not run, as on the 16-core host.
void fail_onednn_convolutions_for_testing(bool winograd, bool pointwise, bool products = false);

/// Whether conv2d_winograd(input, weight, bias, padding) takes oneDNN's Winograd kernel (and not
/// at::conv2d) on this machine.
bool winograd_runs(const torch::Tensor& input, const torch::Tensor& weight, const c10::optional<torch::Tensor>& bias,
                   const std::vector<int64_t>& padding);

/// oneDNN's name of the kernel conv2d_winograd(input, weight, bias, padding) runs (a Winograd one, or a
/// direct one for fewer than 16 input channels); empty where the call goes to at::conv2d.
std::string winograd_kernel(const torch::Tensor& input, const torch::Tensor& weight,
                            const c10::optional<torch::Tensor>& bias, const std::vector<int64_t>& padding);

/// torch.conv2d(input, weight, bias) for a 1x1 `weight` (stride 1, no padding, one group) through
/// oneDNN's direct convolution on the NCHW tensors (a matrix product per sample), with the weights
/// kept as conv2d_winograd keeps them; about 1e-7 of the output's scale from at::conv2d. Where
/// oneDNN's products do not run (pointwise_available() is false) and LibTorch's are fast
/// (libtorch_products_fast()), conv2d_pointwise_products. What neither takes goes to at::conv2d, as
/// there. The TorchScript operator scoreflow::conv2d_pointwise.
torch::Tensor conv2d_pointwise(const torch::Tensor& input, const torch::Tensor& weight,
                               const c10::optional<torch::Tensor>& bias);

/// Whether this build has the pointwise convolutions and oneDNN's float32 matrix products, which they
/// run on, work in this process (checked once). Inside PyTorch's own LibTorch they do not: libtorch_cpu
/// exports oneDNN 3.x template instances under the names Debian's oneDNN 2.x library calls its own by,
/// among them the once-only set-up of its product kernels, and the loader binds those calls to
/// LibTorch's copies (docs/performance.md, "CPU", session 23).
bool pointwise_available();

/// Whether LibTorch's own float32 matrix products are fast on this build (it has MKL; Debian's LibTorch
/// has the reference BLAS). Where they are and oneDNN's do not run, 1x1 convolutions still go to
/// conv2d_pointwise, which runs them as conv2d_pointwise_products.
bool libtorch_products_fast();

/// For tests: while set, libtorch_products_fast() is true whatever the BLAS.
void assume_fast_libtorch_products_for_testing(bool fast);

/// torch.conv2d(input, weight, bias) for a 1x1 `weight` as one batched matrix product of LibTorch's
/// (at::baddbmm) on the NCHW tensors: the [O, C] weight times each sample's [C, H*W] pixels, the bias
/// added by the product, no layout conversion. About 1e-7 of the output's scale from at::conv2d. Float32
/// CPU tensors without gradients only; anything else goes to at::conv2d.
torch::Tensor conv2d_pointwise_products(const torch::Tensor& input, const torch::Tensor& weight,
                                        const c10::optional<torch::Tensor>& bias);

/// Whether conv2d_pointwise(input, weight, bias) takes oneDNN's kernel on this machine.
bool pointwise_runs(const torch::Tensor& input, const torch::Tensor& weight, const c10::optional<torch::Tensor>& bias);

/// Which convolutions route_convolutions_through_onednn rewrites.
struct OneDnnConvolutions {
  bool winograd = true;   ///< 3x3 ones, into scoreflow::conv2d_winograd
  bool pointwise = true;  ///< unpadded 1x1 ones, into scoreflow::conv2d_pointwise
};

/// The kinds of convolution route_convolutions_through_onednn routes in this build and process:
/// Winograd ones where winograd_available(), 1x1 ones where pointwise_products() is not "".
OneDnnConvolutions routable_convolutions();

/// Whose products conv2d_pointwise runs a 1x1 convolution on: "oneDNN" where pointwise_available(),
/// else "LibTorch" where libtorch_products_fast(), else "" (it is left to at::conv2d, so not routed).
const char* pointwise_products();

/// Rewrites, in `graph`, every aten::conv2d with a constant float weight, stride 1, dilation 1 and one
/// group that `routes` names: 3x3 ones into scoreflow::conv2d_winograd, unpadded 1x1 ones into
/// scoreflow::conv2d_pointwise (only where pointwise_available() or libtorch_products_fast()); returns
/// how many. Without winograd_available() only the 1x1 ones (which then run as LibTorch's products).
int route_convolutions_through_onednn(std::shared_ptr<torch::jit::Graph>& graph, OneDnnConvolutions routes = {});

/// How many scoreflow::conv2d_winograd calls `graph` holds.
int count_winograd_convolutions(torch::jit::Graph& graph);

/// How many scoreflow::conv2d_pointwise calls `graph` holds.
int count_pointwise_convolutions(torch::jit::Graph& graph);

}  // namespace scoreflow::detail
