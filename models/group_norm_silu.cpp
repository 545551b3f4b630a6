#include "models/group_norm_silu.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
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

}  // namespace

torch::Tensor group_norm_silu(const torch::Tensor& input, int64_t groups, const c10::optional<torch::Tensor>& weight,
                              const c10::optional<torch::Tensor>& bias, double eps) {
  const auto usable = [&](const c10::optional<torch::Tensor>& p) {
    return !p || !p->defined() ||
           (p->device().is_cpu() && p->scalar_type() == torch::kFloat32 && p->dim() == 1 &&
            p->size(0) == input.size(1) && !p->requires_grad());
  };
  if (!input.device().is_cpu() || input.scalar_type() != torch::kFloat32 || input.dim() < 2 || groups <= 0 ||
      input.size(1) % groups != 0 || input.numel() == 0 || (torch::GradMode::is_enabled() && input.requires_grad()) ||
      !usable(weight) || !usable(bias))
    return unfused(input, groups, weight, bias, eps);

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
      // One pass, about the group's first element: a value of the group, so the squares lose nothing
      // to cancellation unless the mean lies thousands of standard deviations away from it.
      double sum = 0, squares = 0;
      group_sums(gx, group_size, gx[0], &sum, &squares);
      const double shift = sum / static_cast<double>(group_size), mean = gx[0] + shift;
      const double variance = std::max(0.0, squares / static_cast<double>(group_size) - shift * shift);
      const double rstd = 1.0 / std::sqrt(variance + eps);
      // x - mean as (x - m) - (mean - m), m the float nearest the mean: x - m is exact for the elements
      // near the mean, so a mean far from zero costs no precision (x * a + s would cancel).
      const float m = static_cast<float>(mean);
      const int64_t first_channel = (task % groups) * per_group;
      for (int64_t c = 0; c < per_group; ++c) {
        const int64_t channel = first_channel + c;
        const double a = rstd * (wp ? wp[channel] : 1.0f);
        const double s = (bp ? bp[channel] : 0.0f) - (mean - m) * a;
        affine_silu(gx + c * per_channel, gy + c * per_channel, per_channel, m, static_cast<float>(a),
                    static_cast<float>(s));
      }
    }
  });
  return out;
}

TORCH_LIBRARY_FRAGMENT(scoreflow, m) {
  m.def("group_norm_silu(Tensor input, int groups, Tensor? weight, Tensor? bias, float eps) -> Tensor",
        &group_norm_silu);
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
  return static_cast<int>(nodes_of_kind(graph, "scoreflow::group_norm_silu").size());
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
