#include "models/group_norm_silu.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "models/cpu_optimize.h"

// The two loops below are compiled for AVX-512, AVX2 and plain x86-64, and the best one this CPU runs
// is picked when the program starts (GCC's function multi-versioning), so that one binary vectorises
// on every machine. Both are written so that the compiler can vectorise them without fast-math.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define SCOREFLOW_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SCOREFLOW_VECTOR_CLONES
#endif

namespace scoreflow::detail {

namespace {

// GCC's vector types: 16 floats or 8 doubles, one AVX-512 register (two AVX2 ones, four SSE ones).
typedef float Floats __attribute__((vector_size(64)));
typedef double Doubles __attribute__((vector_size(64)));
typedef int32_t Ints __attribute__((vector_size(64)));
typedef float HalfFloats __attribute__((vector_size(32)));
constexpr int kFloats = 16, kHalf = 8;

/// Sum of x[0..n) - centre and of (x - centre)^2, in double.
SCOREFLOW_VECTOR_CLONES
void group_sums(const float* x, int64_t n, double centre, double* sum, double* squares) {
  Doubles s0 = {}, s1 = {}, q0 = {}, q1 = {};
  const Doubles c = centre - Doubles{};
  int64_t i = 0;
  for (; i + 2 * kHalf <= n; i += 2 * kHalf) {
    HalfFloats a, b;
    std::memcpy(&a, x + i, sizeof a);
    std::memcpy(&b, x + i + kHalf, sizeof b);
    const Doubles da = __builtin_convertvector(a, Doubles) - c, db = __builtin_convertvector(b, Doubles) - c;
    s0 += da;
    s1 += db;
    q0 += da * da;
    q1 += db * db;
  }
  double ts = 0, tq = 0;
  for (int j = 0; j < kHalf; ++j) {
    ts += s0[j] + s1[j];
    tq += q0[j] + q1[j];
  }
  for (; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - centre;
    ts += d;
    tq += d * d;
  }
  *sum = ts;
  *squares = tq;
}

/// silu((x - m) * a + s) on kFloats lanes, with exp(-v) as 2^k * e^r, |r| <= ln(2)/2 (a degree-7 Taylor
/// polynomial: error below 1e-8 relative) and 2^k made from its exponent bits.
__attribute__((always_inline)) inline Floats affine_silu_lanes(Floats x, float m, float a, float s) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;  // ln 2 in 9 bits, so that k * kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  const Floats v = (x - m) * a + s;
  // exp(-v) for -v in [-87.3, 88.3]: 2^k stays a normal float; beyond, silu is v or 0 to float precision.
  Floats t = -v;
  t = t < -87.3f ? -87.3f - Floats{} : t;
  t = t > 88.3f ? 88.3f - Floats{} : t;
  t = t == t ? t : Floats{};  // NaN stays NaN through v; only the integer conversion must not see it
  const Floats k = (t * kLog2e + kRound) - kRound;
  const Floats r = (t - k * kLn2Hi) - k * kLn2Lo;
  const Floats p =
      1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 +
                                          r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
  const Ints bits = (__builtin_convertvector(k, Ints) + 127) << 23;
  return v / (1.0f + p * reinterpret_cast<Floats>(bits));
}

/// y[i] = silu((x[i] - m) * a + s) for i < n.
SCOREFLOW_VECTOR_CLONES
void affine_silu(const float* x, float* y, int64_t n, float m, float a, float s) {
  int64_t i = 0;
  for (; i + kFloats <= n; i += kFloats) {
    Floats v;
    std::memcpy(&v, x + i, sizeof v);
    v = affine_silu_lanes(v, m, a, s);
    std::memcpy(y + i, &v, sizeof v);
  }
  if (i < n) {  // the last few elements through the same lanes, padded
    Floats v = {};
    std::memcpy(&v, x + i, sizeof(float) * (n - i));
    v = affine_silu_lanes(v, m, a, s);
    std::memcpy(y + i, &v, sizeof(float) * (n - i));
  }
}

torch::Tensor unfused(const torch::Tensor& input, int64_t groups, const c10::optional<torch::Tensor>& weight,
                      const c10::optional<torch::Tensor>& bias, double eps) {
  return at::silu(at::group_norm(input, groups, weight, bias, eps));
}

/// y[i] = (a[i] + b[i]) / d, or * d, for i < n, in float like LibTorch's two operators.
SCOREFLOW_VECTOR_CLONES
void add_then_scale(const float* a, const float* b, float* y, int64_t n, float d, bool divide) {
  if (divide)
    for (int64_t i = 0; i < n; ++i) y[i] = (a[i] + b[i]) / d;
  else
    for (int64_t i = 0; i < n; ++i) y[i] = (a[i] + b[i]) * d;
}

/// The fused kernel for a float32 CPU `input` [N, C, ...], after `input + shift` where `shift` is
/// defined: one value per sample (or one for all samples) and channel, `shift_rows` rows of C.
torch::Tensor fused(const torch::Tensor& input, const float* shift, int64_t shift_rows, int64_t groups,
                    const c10::optional<torch::Tensor>& weight, const c10::optional<torch::Tensor>& bias, double eps) {
  const torch::Tensor x = input.contiguous();
  const int64_t n = x.size(0), channels = x.size(1), per_channel = x.numel() / (n * channels);
  const int64_t per_group = channels / groups, group_size = per_group * per_channel;
  const torch::Tensor w = weight && weight->defined() ? weight->contiguous() : torch::Tensor();
  const torch::Tensor b = bias && bias->defined() ? bias->contiguous() : torch::Tensor();
  const float* wp = w.defined() ? w.data_ptr<float>() : nullptr;
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  torch::Tensor out = at::empty_like(x);
  const float* xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  // One task per (sample, group); about 32k elements per task at least, so small calls stay on one thread.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(group_size, 1));
  at::parallel_for(0, n * groups, grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const float* gx = xp + task * group_size;
      float* gy = op + task * group_size;
      const int64_t first_channel = (task % groups) * per_group;
      // The channels' shifts (zero without one): the group holds x + shift[channel].
      const float* row = shift ? shift + (shift_rows == 1 ? 0 : task / groups) * channels : nullptr;
      const auto shift_of = [&](int64_t c) { return row ? static_cast<double>(row[first_channel + c]) : 0.0; };
      // One pass, about the group's first element: a value of the group, so the squares lose nothing
      // to cancellation unless the mean lies thousands of standard deviations away from it.
      const double centre = gx[0] + shift_of(0);
      double sum = 0, squares = 0;
      if (!row) {
        group_sums(gx, group_size, centre, &sum, &squares);
      } else {
        for (int64_t c = 0; c < per_group; ++c) {  // x + s - centre as x - (centre - s), in double
          double s = 0, q = 0;
          group_sums(gx + c * per_channel, per_channel, centre - shift_of(c), &s, &q);
          sum += s;
          squares += q;
        }
      }
      const double offset = sum / static_cast<double>(group_size), mean = centre + offset;
      const double variance = std::max(0.0, squares / static_cast<double>(group_size) - offset * offset);
      const double rstd = 1.0 / std::sqrt(variance + eps);
      for (int64_t c = 0; c < per_group; ++c) {
        const int64_t channel = first_channel + c;
        // x + shift - mean as (x - m) - (mean - shift - m), m the float nearest mean - shift: x - m is
        // exact for the elements near the mean, so a mean far from zero costs no precision (x * a + s
        // would cancel).
        const double centred = mean - shift_of(c);
        const float m = static_cast<float>(centred);
        const double a = rstd * (wp ? wp[channel] : 1.0f);
        const double s = (bp ? bp[channel] : 0.0f) - (centred - m) * a;
        affine_silu(gx + c * per_channel, gy + c * per_channel, per_channel, m, static_cast<float>(a),
                    static_cast<float>(s));
      }
    }
  });
  return out;
}

/// Whether the fused kernel takes `input` and the normalisation's parameters.
bool fusable(const torch::Tensor& input, int64_t groups, const c10::optional<torch::Tensor>& weight,
             const c10::optional<torch::Tensor>& bias) {
  const auto usable = [&](const c10::optional<torch::Tensor>& p) {
    return !p || !p->defined() ||
           (p->device().is_cpu() && p->scalar_type() == torch::kFloat32 && p->dim() == 1 &&
            p->size(0) == input.size(1) && !p->requires_grad());
  };
  return input.device().is_cpu() && input.scalar_type() == torch::kFloat32 && input.dim() >= 2 && groups > 0 &&
         input.size(1) % groups == 0 && input.numel() > 0 &&
         !(torch::GradMode::is_enabled() && input.requires_grad()) && usable(weight) && usable(bias);
}

}  // namespace

torch::Tensor group_norm_silu(const torch::Tensor& input, int64_t groups, const c10::optional<torch::Tensor>& weight,
                              const c10::optional<torch::Tensor>& bias, double eps) {
  if (!fusable(input, groups, weight, bias)) return unfused(input, groups, weight, bias, eps);
  return fused(input, nullptr, 0, groups, weight, bias, eps);
}

torch::Tensor add_group_norm_silu(const torch::Tensor& input, const torch::Tensor& shift, int64_t groups,
                                  const c10::optional<torch::Tensor>& weight, const c10::optional<torch::Tensor>& bias,
                                  double eps) {
  // The kernel takes a shift of [N or 1, C, 1, ...] that broadcasts into the input without enlarging it,
  // on either side of the addition.
  const auto per_channel = [&](const torch::Tensor& x, const torch::Tensor& s) {
    bool ok = fusable(x, groups, weight, bias) && s.device().is_cpu() && s.scalar_type() == torch::kFloat32 &&
              s.dim() == x.dim() && (s.size(0) == 1 || s.size(0) == x.size(0)) && s.size(1) == x.size(1) &&
              !(torch::GradMode::is_enabled() && s.requires_grad());
    for (int64_t d = 2; ok && d < s.dim(); ++d) ok = s.size(d) == 1;
    return ok;
  };
  const bool direct = per_channel(input, shift), swapped = !direct && per_channel(shift, input);
  if (!direct && !swapped) return unfused(at::add(input, shift), groups, weight, bias, eps);
  const torch::Tensor& x = swapped ? shift : input;
  const torch::Tensor& s = swapped ? input : shift;
  const torch::Tensor rows = s.reshape({s.size(0), s.size(1)}).contiguous();
  return fused(x, rows.data_ptr<float>(), rows.size(0), groups, weight, bias, eps);
}

torch::Tensor add_scale(const torch::Tensor& self, const torch::Tensor& other, const at::Scalar& scale, bool divide) {
  if (!self.device().is_cpu() || self.scalar_type() != torch::kFloat32 || !other.device().is_cpu() ||
      other.scalar_type() != torch::kFloat32 || self.sizes() != other.sizes() || !self.is_contiguous() ||
      !other.is_contiguous() || !(scale.isFloatingPoint() || scale.isIntegral(false)) ||
      (torch::GradMode::is_enabled() && (self.requires_grad() || other.requires_grad())))
    return divide ? at::div(at::add(self, other), scale) : at::mul(at::add(self, other), scale);
  torch::Tensor out = at::empty_like(self);
  const float* a = self.data_ptr<float>();
  const float* b = other.data_ptr<float>();
  float* y = out.data_ptr<float>();
  const float d = static_cast<float>(scale.toDouble());
  at::parallel_for(0, self.numel(), int64_t{1} << 15, [&](int64_t begin, int64_t end) {
    add_then_scale(a + begin, b + begin, y + begin, end - begin, d, divide);
  });
  return out;
}

TORCH_LIBRARY_FRAGMENT(scoreflow, m) {
  m.def("group_norm_silu(Tensor input, int groups, Tensor? weight, Tensor? bias, float eps) -> Tensor",
        &group_norm_silu);
  m.def(
      "add_group_norm_silu(Tensor input, Tensor shift, int groups, Tensor? weight, Tensor? bias, float eps) -> "
      "Tensor",
      &add_group_norm_silu);
  m.def("add_scale(Tensor self, Tensor other, Scalar scale, bool divide) -> Tensor", &add_scale);
}

int parallel_for_threads(int64_t tasks) {
  std::mutex mutex;
  std::set<std::thread::id> threads;
  at::parallel_for(0, tasks, 1, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> lock(mutex);
    threads.insert(std::this_thread::get_id());
  });
  return static_cast<int>(threads.size());
}

int count_group_norm_silu(torch::jit::Graph& graph) {
  return static_cast<int>(nodes_of_kind(graph, "scoreflow::group_norm_silu").size() +
                          nodes_of_kind(graph, "scoreflow::add_group_norm_silu").size());
}

namespace {

/// Whether `value` is the constant 1 (an addition's alpha).
bool is_constant_one(torch::jit::Value* value) {
  const c10::optional<c10::IValue> v = torch::jit::toIValue(value);
  return v && ((v->isInt() && v->toInt() == 1) || (v->isDouble() && v->toDouble() == 1.0));
}

/// Whether `node` only reads its tensor's shape, dtype or device, which an in-place addition of a
/// per-channel shift does not change and a fused operator's output shares.
bool reads_metadata(const torch::jit::Node* node) {
  static const std::set<std::string> readers = {"aten::size", "aten::dim", "prim::dtype", "prim::device"};
  return readers.count(node->kind().toQualString()) > 0;
}

/// Whether `value` is a tensor that a convolution or linear layer made and that nothing but `user`
/// reads, except for its metadata: an in-place addition to it by `user` is seen by no other value (EDM
/// writes `x.add_(...)` on a convolution's output, after reading its dtype).
bool private_result(torch::jit::Value* value, const torch::jit::Node* user) {
  static const std::set<std::string> makers = {
      "aten::conv2d", "aten::convolution",          "aten::_convolution",
      "aten::linear", "scoreflow::conv2d_winograd", "scoreflow::conv2d_pointwise"};
  if (makers.count(value->node()->kind().toQualString()) == 0) return false;
  for (const torch::jit::Use& use : value->uses())
    if (use.user != user && !reads_metadata(use.user)) return false;
  return true;
}

/// The aten::add(Tensor, Tensor, 1) that produces `value`, or an aten::add_ whose mutation nothing else
/// sees; nullptr otherwise.
torch::jit::Node* tensor_addition(torch::jit::Value* value) {
  torch::jit::Node* add = value->node();
  const bool in_place = add->kind() == c10::Symbol::fromQualString("aten::add_");
  if ((add->kind() != c10::Symbol::fromQualString("aten::add") && !in_place) || add->inputs().size() != 3)
    return nullptr;
  const auto tensor = [](torch::jit::Value* v) { return v->type()->cast<c10::TensorType>() != nullptr; };
  if (!tensor(add->input(0)) || !tensor(add->input(1)) || !is_constant_one(add->input(2))) return nullptr;
  return !in_place || private_result(add->input(0), add) ? add : nullptr;
}

}  // namespace

int fuse_additions(std::shared_ptr<torch::jit::Graph>& graph) {
  using torch::jit::Node;
  int fused = 0;
  // silu(group_norm(a + b)): the addition goes into the fused operator, which sits where the addition
  // was, so that what else reads the sum's metadata (the shape checks torch.nn.functional.group_norm
  // scripts: aten::size, and aten::dim in PyTorch 2) reads its output, of the same shape and dtype.
  const c10::Symbol silu = c10::Symbol::fromQualString("aten::silu"),
                    silu_ = c10::Symbol::fromQualString("aten::silu_");
  for (Node* norm : nodes_of_kind(*graph, "aten::group_norm")) {
    if (norm->inputs().size() != 6 || norm->output()->uses().size() != 1) continue;
    Node* act = norm->output()->uses()[0].user;
    if ((act->kind() != silu && act->kind() != silu_) || act->inputs().size() != 1) continue;
    Node* add = tensor_addition(norm->input(0));
    if (!add || add->owningBlock() != norm->owningBlock()) continue;
    bool only_metadata = true;
    for (const torch::jit::Use& use : add->output()->uses())
      only_metadata = only_metadata && (use.user == norm || reads_metadata(use.user));
    bool constants = true;
    for (size_t i = 1; i < 5; ++i) constants = constants && norm->input(i)->node()->kind() == c10::prim::Constant;
    if (!only_metadata || !constants) continue;
    Node* node = graph->create(
        c10::Symbol::fromQualString("scoreflow::add_group_norm_silu"),
        {add->input(0), add->input(1), norm->input(1), norm->input(2), norm->input(3), norm->input(4)}, 1);
    node->insertAfter(add);
    act->output()->replaceAllUsesWith(node->output());
    act->destroy();
    norm->destroy();
    add->output()->replaceAllUsesWith(node->output());  // what is left: the metadata reads
    add->destroy();
    ++fused;
  }
  // (a + b) / c and (a + b) * c for a constant number c: one pass instead of two.
  for (const char* kind : {"aten::div", "aten::mul"}) {
    for (Node* scale : nodes_of_kind(*graph, kind)) {
      if (scale->inputs().size() != 2 || scale->input(1)->node()->kind() != c10::prim::Constant) continue;
      const c10::TypePtr type = scale->input(1)->type();
      if (type->kind() != c10::TypeKind::FloatType && type->kind() != c10::TypeKind::IntType) continue;
      Node* add = tensor_addition(scale->input(0));
      if (!add || add->output()->uses().size() != 1) continue;
      torch::jit::WithInsertPoint guard(scale);
      torch::jit::Value* divide = graph->insertConstant(std::string(kind) == "aten::div");
      Node* node = graph->create(c10::Symbol::fromQualString("scoreflow::add_scale"),
                                 {add->input(0), add->input(1), scale->input(1), divide}, 1);
      node->insertBefore(scale);
      scale->output()->replaceAllUsesWith(node->output());
      scale->destroy();
      add->destroy();
      ++fused;
    }
  }
  return fused;
}

int count_fused_additions(torch::jit::Graph& graph) {
  return static_cast<int>(nodes_of_kind(graph, "scoreflow::add_group_norm_silu").size() +
                          nodes_of_kind(graph, "scoreflow::add_scale").size());
}

int fuse_group_norm_silu(std::shared_ptr<torch::jit::Graph>& graph) {
  using torch::jit::Node;
  const c10::Symbol silu = c10::Symbol::fromQualString("aten::silu"),
                    silu_ = c10::Symbol::fromQualString("aten::silu_");
  int fused = 0;
  for (Node* norm : nodes_of_kind(*graph, "aten::group_norm")) {
    if (norm->inputs().size() != 6 || norm->output()->uses().size() != 1) continue;
    Node* act = norm->output()->uses()[0].user;
    if ((act->kind() != silu && act->kind() != silu_) || act->inputs().size() != 1) continue;
    Node* node = graph->create(c10::Symbol::fromQualString("scoreflow::group_norm_silu"),
                               {norm->input(0), norm->input(1), norm->input(2), norm->input(3), norm->input(4)}, 1);
    node->insertBefore(act);  // its output is a Tensor, the type a new node's outputs have
    act->output()->replaceAllUsesWith(node->output());
    act->destroy();
    norm->destroy();
    ++fused;
  }
  return fused;
}

}  // namespace scoreflow::detail
