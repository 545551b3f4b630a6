#include "models/winograd_conv.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "models/cpu_optimize.h"

#ifdef SCOREFLOW_WITH_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace scoreflow::detail {

namespace {

torch::Tensor conv2d_direct(const torch::Tensor& input, const torch::Tensor& weight,
                            const c10::optional<torch::Tensor>& bias, const std::vector<int64_t>& padding) {
  return at::conv2d(input, weight, bias, {1, 1}, padding, {1, 1}, 1);
}

/// Whether a `size` x `size` convolution with `padding` (one value per side) can leave at::conv2d:
/// float32 strided CPU tensors without gradients, matching shapes, a non-empty input and output. The
/// oneDNN kernels and conv2d_pointwise_products take the same arguments.
bool takes_float_conv(const torch::Tensor& input, const torch::Tensor& weight, const c10::optional<torch::Tensor>& bias,
                      const std::vector<int64_t>& padding, int64_t size) {
  const auto is_cpu_float = [](const torch::Tensor& t) {
    return t.device().is_cpu() && t.layout() == torch::kStrided && t.scalar_type() == torch::kFloat32 &&
           !t.requires_grad();
  };
  const bool has_bias = bias.has_value() && bias->defined();
  return padding.size() == 2 && padding[0] >= 0 && padding[1] >= 0 && (size != 1 || (!padding[0] && !padding[1])) &&
         input.dim() == 4 && weight.dim() == 4 && weight.size(2) == size && weight.size(3) == size &&
         input.size(1) == weight.size(1) && input.numel() > 0 && weight.numel() > 0 && is_cpu_float(input) &&
         is_cpu_float(weight) &&
         (!has_bias || (is_cpu_float(*bias) && bias->dim() == 1 && bias->size(0) == weight.size(0))) &&
         input.size(2) + 2 * padding[0] >= size && input.size(3) + 2 * padding[1] >= size;
}

#ifdef SCOREFLOW_WITH_DNNL

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

/// One Winograd convolution for one input shape: the primitive, the reorders between PyTorch's
/// NCHW tensors and the primitive's blocked layouts (empty where none is needed) and the weights in
/// the primitive's layout. `ok` is false where oneDNN has no kernel for the shape (a 1x1 one is not
/// built at all where its matrix products do not run: usable_kernel asks pointwise_available first).
struct Kernel {
  bool ok = false;
  bool pointwise = false;  // a 1x1 kernel (conv2d_pointwise's)
  dnnl::convolution_forward conv;
  dnnl::memory::desc src_md, dst_md, plain_src_md, plain_dst_md;
  dnnl::reorder to_src, from_dst;
  bool reorder_src = false, reorder_dst = false;
  dnnl::memory weights;
  dnnl::memory::desc scratchpad_md, bias_md;
  std::string name;  // oneDNN's name of the implementation
};

/// The kernels of one weight tensor. `owner` keeps the tensor's address from being reused while the
/// entry exists (a weak reference), so a dead tensor's entry is never taken for a new one's.
struct WeightKernels {
  c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl> owner{
      c10::intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>()};
  uint32_t version = 0;
  std::map<std::array<int64_t, 7>, std::shared_ptr<const Kernel>> kernels;
  std::vector<dnnl::memory> transformed;  // the weights in each layout a kernel asked for, shared
};

std::mutex cache_mutex;
std::unordered_map<const c10::TensorImpl*, WeightKernels> cache;

/// Whether oneDNN's float32 matrix products run in this process: its x64:gemm:jit 1x1 convolution
/// calls them, and their kernels are generated at the first product. Checked once, from the first
/// thread that asks, with a 2x2 product.
bool gemm_works() {
  static const bool works = [] {
    const float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1};
    float c[4] = {0, 0, 0, 0};
    return dnnl_sgemm('N', 'N', 2, 2, 2, 1.f, a, 2, b, 2, 0.f, c, 2) == dnnl_success && c[0] == 1 && c[3] == 4;
  }();
  return works;
}

std::shared_ptr<const Kernel> build_kernel(const torch::Tensor& weight, const std::array<int64_t, 7>& key,
                                           std::vector<dnnl::memory>& transformed) {
  using dnnl::memory;
  const auto [n, c, h, w, o, ph, pw] = key;
  const bool has_bias = o < 0;
  const int64_t out_c = has_bias ? -o : o, kh = weight.size(2), kw = weight.size(3);
  const memory::dims src_dims{n, c, h, w}, wei_dims{out_c, c, kh, kw},
      dst_dims{n, out_c, h + 2 * ph - kh + 1, w + 2 * pw - kw + 1};
  // 3x3: Winograd in the layouts oneDNN picks; with fewer than 16 input channels (a network's first
  // layer) the direct algorithm, as Winograd pads the channels to 16 (the demo model's 1 -> 48 layer
  // took twice as long). 1x1: the direct convolution on the NCHW tensors themselves, which oneDNN runs
  // as matrix products with no reorder of input or output.
  const bool pointwise = kh == 1 && kw == 1, direct = pointwise || c < 16;
  const auto activation = [pointwise](const memory::dims& d) {
    return memory::desc(d, memory::data_type::f32, pointwise ? memory::format_tag::nchw : memory::format_tag::any);
  };
  const auto any = [](const memory::dims& d) {
    return memory::desc(d, memory::data_type::f32, memory::format_tag::any);
  };
  auto kernel = std::make_shared<Kernel>();
  kernel->pointwise = pointwise;
  try {
    const memory::desc bias_md =
        has_bias ? memory::desc({out_c}, memory::data_type::f32, memory::format_tag::x) : memory::desc();
    const dnnl::convolution_forward::desc desc(
        dnnl::prop_kind::forward_inference,
        direct ? dnnl::algorithm::convolution_direct : dnnl::algorithm::convolution_winograd, activation(src_dims),
        any(wei_dims), bias_md, activation(dst_dims), {1, 1}, {ph, pw}, {ph, pw});
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // one scratchpad per call: calls may overlap
    const dnnl::convolution_forward::primitive_desc pd(desc, attr, cpu_engine());
    kernel->conv = dnnl::convolution_forward(pd);
    kernel->name = pd.impl_info_str();
    kernel->src_md = pd.src_desc();
    kernel->dst_md = pd.dst_desc();
    kernel->plain_src_md = memory::desc(src_dims, memory::data_type::f32, memory::format_tag::nchw);
    kernel->plain_dst_md = memory::desc(dst_dims, memory::data_type::f32, memory::format_tag::nchw);
    kernel->reorder_src = kernel->src_md != kernel->plain_src_md;
    kernel->reorder_dst = kernel->dst_md != kernel->plain_dst_md;
    if (kernel->reorder_src)
      kernel->to_src = dnnl::reorder(
          dnnl::reorder::primitive_desc(cpu_engine(), kernel->plain_src_md, cpu_engine(), kernel->src_md));
    if (kernel->reorder_dst)
      kernel->from_dst = dnnl::reorder(
          dnnl::reorder::primitive_desc(cpu_engine(), kernel->dst_md, cpu_engine(), kernel->plain_dst_md));
    kernel->scratchpad_md = pd.scratchpad_desc();
    kernel->bias_md = bias_md;
    // The weights in the kernel's layout, transformed once per layout.
    for (const memory& t : transformed)
      if (t.get_desc() == pd.weights_desc()) kernel->weights = t;
    if (!kernel->weights) {
      const torch::Tensor plain_weight = weight.contiguous();
      memory plain(memory::desc(wei_dims, memory::data_type::f32, memory::format_tag::oihw), cpu_engine(),
                   plain_weight.data_ptr());
      kernel->weights = memory(pd.weights_desc(), cpu_engine());
      dnnl::stream stream(cpu_engine());
      dnnl::reorder(plain, kernel->weights).execute(stream, plain, kernel->weights);
      stream.wait();
      transformed.push_back(kernel->weights);
    }
    kernel->ok = true;
  } catch (const dnnl::error&) {
    kernel->ok = false;  // no kernel for this shape on this CPU
  }
  return kernel;
}

std::shared_ptr<const Kernel> kernel_for(const torch::Tensor& weight, const std::array<int64_t, 7>& key) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  c10::TensorImpl* impl = weight.unsafeGetTensorImpl();
  auto it = cache.find(impl);
  if (it == cache.end() || it->second.owner.expired() || it->second.version != weight._version()) {
    for (auto e = cache.begin(); e != cache.end();)  // the entries of tensors that have died
      e = e->second.owner.expired() ? cache.erase(e) : std::next(e);
    WeightKernels fresh;
    fresh.owner = c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>(weight.getIntrusivePtr());
    fresh.version = weight._version();
    it = cache.insert_or_assign(impl, std::move(fresh)).first;
  }
  std::shared_ptr<const Kernel>& kernel = it->second.kernels[key];
  if (!kernel) kernel = build_kernel(weight, key, it->second.transformed);
  return kernel;
}

#endif  // SCOREFLOW_WITH_DNNL

}  // namespace

bool winograd_available() {
#ifdef SCOREFLOW_WITH_DNNL
  return true;
#else
  return false;
#endif
}

namespace {

#ifdef SCOREFLOW_WITH_DNNL
/// The kernel for this call of a `size` x `size` convolution (3: Winograd, 1: pointwise), or nullptr
/// where it goes to at::conv2d.
std::shared_ptr<const Kernel> usable_kernel(const torch::Tensor& input, const torch::Tensor& weight,
                                            const c10::optional<torch::Tensor>& bias,
                                            const std::vector<int64_t>& padding, int64_t size) {
  // The products check first: where it fails, conv2d_pointwise checks the arguments for its own route.
  if ((size == 1 && !pointwise_available()) || !takes_float_conv(input, weight, bias, padding, size)) return nullptr;
  const bool has_bias = bias.has_value() && bias->defined();
  // The output channels carry the bias flag in their sign.
  const std::array<int64_t, 7> key{
      input.size(0), input.size(1), input.size(2), input.size(3), has_bias ? -weight.size(0) : weight.size(0),
      padding[0],    padding[1]};
  std::shared_ptr<const Kernel> k = kernel_for(weight, key);
  return k->ok ? k : nullptr;
}
#endif

std::vector<int64_t> both_sides(std::vector<int64_t> padding) {
  if (padding.size() == 1) padding.push_back(padding[0]);
  return padding;
}

}  // namespace

std::string winograd_kernel(const torch::Tensor& input, const torch::Tensor& weight,
                            const c10::optional<torch::Tensor>& bias, const std::vector<int64_t>& padding) {
#ifdef SCOREFLOW_WITH_DNNL
  if (const std::shared_ptr<const Kernel> k = usable_kernel(input, weight, bias, both_sides(padding), 3))
    return k->name;
#endif
  return {};
}

bool winograd_runs(const torch::Tensor& input, const torch::Tensor& weight, const c10::optional<torch::Tensor>& bias,
                   const std::vector<int64_t>& padding) {
  return !winograd_kernel(input, weight, bias, padding).empty();  // oneDNN names every implementation
}

namespace {

std::atomic<bool> failing_winograd{false}, failing_pointwise{false}, failing_products{false},
    assuming_fast_libtorch_products{false};
constexpr const char* kMadeToFail = "could not execute a primitive (made to fail for a test)";

bool failing_for_testing(bool pointwise) { return (pointwise ? failing_pointwise : failing_winograd).load(); }

/// Throws as oneDNN did inside PyTorch 2.11's LibTorch while fail_onednn_convolutions_for_testing says so.
void maybe_fail_for_testing(bool pointwise) {
  if (failing_for_testing(pointwise)) throw std::runtime_error(kMadeToFail);
}

#ifdef SCOREFLOW_WITH_DNNL
/// "[2, 48, 32, 32]": a shape as messages print it.
std::string dims_text(const dnnl::memory::dims& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

/// Runs kernel `k` on `input` and `bias`; `step` names what it is doing, for run_kernel's message.
torch::Tensor run_kernel_unchecked(const Kernel* k, const torch::Tensor& input,
                                   const c10::optional<torch::Tensor>& bias, const char*& step) {
  const torch::Tensor x = input.contiguous();
  const torch::Tensor b = bias.has_value() && bias->defined() ? bias->contiguous() : torch::Tensor();
  const auto& dims = k->plain_dst_md.dims();
  torch::Tensor out = at::empty({dims[0], dims[1], dims[2], dims[3]}, x.options());
  // The scratchpad and the blocked copies of input and output live in buffers of the calling thread,
  // kept from call to call: fresh pages on every call (large allocations are new mappings) cost as much
  // as a small convolution. Calls at once come from different threads, so they never share one.
  thread_local torch::Tensor scratch, src_tmp, dst_tmp;
  const auto at_least = [](torch::Tensor& buffer, size_t n) {
    if (!buffer.defined() || static_cast<size_t>(buffer.numel()) < n)
      buffer = at::empty({static_cast<int64_t>(std::max<size_t>(n, 1))}, torch::TensorOptions(torch::kUInt8));
  };
  at_least(scratch, k->scratchpad_md.get_size());
  if (k->reorder_src) at_least(src_tmp, k->src_md.get_size());
  if (k->reorder_dst) at_least(dst_tmp, k->dst_md.get_size());

  const dnnl::engine& engine = cpu_engine();
  thread_local dnnl::stream stream(engine);  // a CPU stream holds no state between calls; one per thread
  dnnl::memory plain_src(k->plain_src_md, engine, x.data_ptr()), plain_dst(k->plain_dst_md, engine, out.data_ptr());
  dnnl::memory src = k->reorder_src ? dnnl::memory(k->src_md, engine, src_tmp.data_ptr()) : plain_src;
  dnnl::memory dst = k->reorder_dst ? dnnl::memory(k->dst_md, engine, dst_tmp.data_ptr()) : plain_dst;
  step = "reordering its input";
  if (k->reorder_src) k->to_src.execute(stream, plain_src, src);
  step = "running it";
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, k->weights}, {DNNL_ARG_DST, dst}};
  if (k->scratchpad_md.get_size() > 0)
    args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(k->scratchpad_md, engine, scratch.data_ptr()));
  if (b.defined()) args.emplace(DNNL_ARG_BIAS, dnnl::memory(k->bias_md, engine, b.data_ptr()));
  if (failing_for_testing(k->pointwise)) throw dnnl::error(dnnl_runtime_error, kMadeToFail);
  k->conv.execute(stream, args);
  step = "reordering its output";
  if (k->reorder_dst) k->from_dst.execute(stream, dst, plain_dst);
  step = "waiting for the stream";
  stream.wait();
  return out;
}

/// Runs kernel `k` on `input` and `bias`. A oneDNN failure is rethrown naming the step, the kernel,
/// the shapes and oneDNN's status, so that a note on a machine where it fails says which convolution did.
torch::Tensor run_kernel(const Kernel* k, const torch::Tensor& input, const c10::optional<torch::Tensor>& bias) {
  const char* step = "setting up its memory";
  try {
    return run_kernel_unchecked(k, input, bias, step);
  } catch (const dnnl::error& e) {
    throw std::runtime_error("oneDNN's convolution " + k->name + " from " + dims_text(k->plain_src_md.dims()) + " to " +
                             dims_text(k->plain_dst_md.dims()) + " failed " + step + ": " + e.what() + " (status " +
                             std::to_string(static_cast<int>(e.status)) + ")");
  }
}
#endif

}  // namespace

void fail_onednn_convolutions_for_testing(bool winograd, bool pointwise, bool products) {
  failing_winograd = winograd;
  failing_pointwise = pointwise;
  failing_products = products;
}

torch::Tensor conv2d_winograd(const torch::Tensor& input, const torch::Tensor& weight,
                              const c10::optional<torch::Tensor>& bias, std::vector<int64_t> padding) {
  padding = both_sides(std::move(padding));
#ifdef SCOREFLOW_WITH_DNNL
  if (const std::shared_ptr<const Kernel> k = usable_kernel(input, weight, bias, padding, 3))
    return run_kernel(k.get(), input, bias);
#endif
  maybe_fail_for_testing(false);
  return conv2d_direct(input, weight, bias, padding);
}

bool pointwise_available() {
#ifdef SCOREFLOW_WITH_DNNL
  return gemm_works() && !failing_products.load();
#else
  return false;
#endif
}

bool libtorch_products_fast() { return at::hasMKL() || assuming_fast_libtorch_products.load(); }

void assume_fast_libtorch_products_for_testing(bool fast) { assuming_fast_libtorch_products = fast; }

torch::Tensor conv2d_pointwise_products(const torch::Tensor& input, const torch::Tensor& weight,
                                        const c10::optional<torch::Tensor>& bias) {
  if (!takes_float_conv(input, weight, bias, {0, 0}, 1)) return conv2d_direct(input, weight, bias, {0, 0});
  const int64_t n = input.size(0), c = input.size(1), h = input.size(2), w = input.size(3), o = weight.size(0);
  // Each sample's output is the [o, c] weight matrix times its [c, h*w] pixels: one batched product
  // over the samples, the weight repeated by a zero stride, the bias (a zero-stride [n, o, h*w] view)
  // added by the product itself.
  const torch::Tensor x = input.contiguous().view({n, c, h * w});
  const torch::Tensor m = weight.reshape({o, c}).expand({n, o, c});
  const torch::Tensor y =
      bias && bias->defined() ? at::baddbmm(bias->view({1, o, 1}).expand({n, o, h * w}), m, x) : at::bmm(m, x);
  return y.view({n, o, h, w});
}

bool pointwise_runs(const torch::Tensor& input, const torch::Tensor& weight, const c10::optional<torch::Tensor>& bias) {
#ifdef SCOREFLOW_WITH_DNNL
  return usable_kernel(input, weight, bias, {0, 0}, 1) != nullptr;
#else
  return false;
#endif
}

torch::Tensor conv2d_pointwise(const torch::Tensor& input, const torch::Tensor& weight,
                               const c10::optional<torch::Tensor>& bias) {
#ifdef SCOREFLOW_WITH_DNNL
  if (const std::shared_ptr<const Kernel> k = usable_kernel(input, weight, bias, {0, 0}, 1))
    return run_kernel(k.get(), input, bias);
#endif
  maybe_fail_for_testing(true);
  if (!pointwise_available() && libtorch_products_fast()) return conv2d_pointwise_products(input, weight, bias);
  return conv2d_direct(input, weight, bias, {0, 0});
}

TORCH_LIBRARY_FRAGMENT(scoreflow, m) {
  m.def("conv2d_winograd(Tensor input, Tensor weight, Tensor? bias, int[] padding) -> Tensor", &conv2d_winograd);
  m.def("conv2d_pointwise(Tensor input, Tensor weight, Tensor? bias) -> Tensor", &conv2d_pointwise);
}

int count_winograd_convolutions(torch::jit::Graph& graph) {
  return static_cast<int>(nodes_of_kind(graph, "scoreflow::conv2d_winograd").size());
}

int count_pointwise_convolutions(torch::jit::Graph& graph) {
  return static_cast<int>(nodes_of_kind(graph, "scoreflow::conv2d_pointwise").size());
}

const char* pointwise_products() {
  return pointwise_available() ? "oneDNN" : libtorch_products_fast() ? "LibTorch" : "";
}

OneDnnConvolutions routable_convolutions() { return {winograd_available(), *pointwise_products() != '\0'}; }

int route_convolutions_through_onednn(std::shared_ptr<torch::jit::Graph>& graph, OneDnnConvolutions routes) {
  // Without oneDNN in the build, only the 1x1 convolutions, as LibTorch's products.
  const OneDnnConvolutions routable = routable_convolutions();
  routes.winograd = routes.winograd && routable.winograd;
  routes.pointwise = routes.pointwise && routable.pointwise;
  if (!routes.winograd && !routes.pointwise) return 0;
  using torch::jit::Node;
  std::vector<Node*> convs;
  for (Node* node : nodes_of_kind(*graph, "aten::conv2d"))
    if (node->inputs().size() == 7) convs.push_back(node);
  // A constant int list, also as a list of constants (how a frozen module read back from a file has them).
  const auto ints = [](torch::jit::Value* v) -> c10::optional<std::vector<int64_t>> {
    if (v->node()->kind() == c10::Symbol::fromQualString("prim::ListConstruct")) {
      std::vector<int64_t> items;
      for (torch::jit::Value* item : v->node()->inputs()) {
        const c10::optional<c10::IValue> iv = torch::jit::toIValue(item);
        if (!iv || !iv->isInt()) return c10::nullopt;
        items.push_back(iv->toInt());
      }
      return items;
    }
    const c10::optional<c10::IValue> iv = torch::jit::toIValue(v);
    if (!iv || !iv->isIntList()) return c10::nullopt;
    return iv->toIntVector();
  };
  int routed = 0;
  for (Node* conv : convs) {
    const c10::optional<c10::IValue> weight = torch::jit::toIValue(conv->input(1));
    const c10::optional<c10::IValue> groups = torch::jit::toIValue(conv->input(6));
    const auto stride = ints(conv->input(3)), padding = ints(conv->input(4)), dilation = ints(conv->input(5));
    const auto ones = [](const c10::optional<std::vector<int64_t>>& v) {
      return v && !v->empty() && std::all_of(v->begin(), v->end(), [](int64_t x) { return x == 1; });
    };
    if (!weight || !weight->isTensor() || weight->toTensor().dim() != 4 ||
        weight->toTensor().scalar_type() != torch::kFloat32 || !groups || !groups->isInt() || groups->toInt() != 1 ||
        !ones(stride) || !ones(dilation) || !padding)
      continue;
    const int64_t kh = weight->toTensor().size(2), kw = weight->toTensor().size(3);
    const bool unpadded = std::all_of(padding->begin(), padding->end(), [](int64_t p) { return p == 0; });
    Node* fast = nullptr;
    if (kh == 3 && kw == 3 && routes.winograd)
      fast = graph->create(c10::Symbol::fromQualString("scoreflow::conv2d_winograd"),
                           {conv->input(0), conv->input(1), conv->input(2), conv->input(4)}, 1);
    else if (kh == 1 && kw == 1 && unpadded && routes.pointwise)
      fast = graph->create(c10::Symbol::fromQualString("scoreflow::conv2d_pointwise"),
                           {conv->input(0), conv->input(1), conv->input(2)}, 1);
    else
      continue;
    fast->insertBefore(conv);  // its output is a Tensor, the type a new node's outputs have
    conv->output()->replaceAllUsesWith(fast->output());
    conv->destroy();
    ++routed;
  }
  return routed;
}

}  // namespace scoreflow::detail
