#include "mixture_posterior.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SCOREFLOW_AVX2_KERNEL 1
#endif

namespace scoreflow {
namespace {

// Register tile of the float64 matrix product: 4 rows × 12 columns (three 4-wide vectors).
constexpr int64_t kMr = 4, kNr = 12;
// Components per streamed block; sample rows per block at most (multiple of kNr).
constexpr int64_t kComponentBlock = 128;
// The LibTorch path: rows at least this long, and about this many [B, block] values per component
// block (4 MB of float64; the block is a multiple of 128 components).
constexpr int64_t kTorchMinDims = 32, kTorchBlockValues = int64_t{1} << 19;

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

/// C[4×12] += A[4×kc]·B[kc×12] (row-major, leading dimensions lda, ldb, ldc). With skip_zero, a
/// column p of A that is zero in all four rows is skipped (posterior weights that underflowed).
using Kernel = void (*)(int64_t kc, const double* a, int64_t lda, const double* b, int64_t ldb, double* c, int64_t ldc,
                        bool skip_zero);

void kernel_generic(int64_t kc, const double* a, int64_t lda, const double* b, int64_t ldb, double* c, int64_t ldc,
                    bool skip_zero) {
  double acc[kMr][kNr];
  for (int64_t r = 0; r < kMr; ++r)
    for (int64_t j = 0; j < kNr; ++j) acc[r][j] = c[r * ldc + j];
  for (int64_t p = 0; p < kc; ++p) {
    const double a0 = a[p], a1 = a[lda + p], a2 = a[2 * lda + p], a3 = a[3 * lda + p];
    if (skip_zero && a0 == 0 && a1 == 0 && a2 == 0 && a3 == 0) continue;
    const double* bp = b + p * ldb;
    for (int64_t j = 0; j < kNr; ++j) {
      acc[0][j] += a0 * bp[j];
      acc[1][j] += a1 * bp[j];
      acc[2][j] += a2 * bp[j];
      acc[3][j] += a3 * bp[j];
    }
  }
  for (int64_t r = 0; r < kMr; ++r)
    for (int64_t j = 0; j < kNr; ++j) c[r * ldc + j] = acc[r][j];
}

#ifdef SCOREFLOW_AVX2_KERNEL
__attribute__((target("avx2,fma"))) void kernel_avx2(int64_t kc, const double* a, int64_t lda, const double* b,
                                                     int64_t ldb, double* c, int64_t ldc, bool skip_zero) {
  __m256d c00 = _mm256_loadu_pd(c), c01 = _mm256_loadu_pd(c + 4), c02 = _mm256_loadu_pd(c + 8);
  __m256d c10 = _mm256_loadu_pd(c + ldc), c11 = _mm256_loadu_pd(c + ldc + 4), c12 = _mm256_loadu_pd(c + ldc + 8);
  __m256d c20 = _mm256_loadu_pd(c + 2 * ldc), c21 = _mm256_loadu_pd(c + 2 * ldc + 4),
          c22 = _mm256_loadu_pd(c + 2 * ldc + 8);
  __m256d c30 = _mm256_loadu_pd(c + 3 * ldc), c31 = _mm256_loadu_pd(c + 3 * ldc + 4),
          c32 = _mm256_loadu_pd(c + 3 * ldc + 8);
  const double *a0p = a, *a1p = a + lda, *a2p = a + 2 * lda, *a3p = a + 3 * lda;
  for (int64_t p = 0; p < kc; ++p) {
    const double a0 = a0p[p], a1 = a1p[p], a2 = a2p[p], a3 = a3p[p];
    if (skip_zero && a0 == 0 && a1 == 0 && a2 == 0 && a3 == 0) continue;
    const double* bp = b + p * ldb;
    const __m256d b0 = _mm256_loadu_pd(bp), b1 = _mm256_loadu_pd(bp + 4), b2 = _mm256_loadu_pd(bp + 8);
    __m256d s = _mm256_set1_pd(a0);
    c00 = _mm256_fmadd_pd(s, b0, c00), c01 = _mm256_fmadd_pd(s, b1, c01), c02 = _mm256_fmadd_pd(s, b2, c02);
    s = _mm256_set1_pd(a1);
    c10 = _mm256_fmadd_pd(s, b0, c10), c11 = _mm256_fmadd_pd(s, b1, c11), c12 = _mm256_fmadd_pd(s, b2, c12);
    s = _mm256_set1_pd(a2);
    c20 = _mm256_fmadd_pd(s, b0, c20), c21 = _mm256_fmadd_pd(s, b1, c21), c22 = _mm256_fmadd_pd(s, b2, c22);
    s = _mm256_set1_pd(a3);
    c30 = _mm256_fmadd_pd(s, b0, c30), c31 = _mm256_fmadd_pd(s, b1, c31), c32 = _mm256_fmadd_pd(s, b2, c32);
  }
  _mm256_storeu_pd(c, c00), _mm256_storeu_pd(c + 4, c01), _mm256_storeu_pd(c + 8, c02);
  _mm256_storeu_pd(c + ldc, c10), _mm256_storeu_pd(c + ldc + 4, c11), _mm256_storeu_pd(c + ldc + 8, c12);
  _mm256_storeu_pd(c + 2 * ldc, c20), _mm256_storeu_pd(c + 2 * ldc + 4, c21), _mm256_storeu_pd(c + 2 * ldc + 8, c22);
  _mm256_storeu_pd(c + 3 * ldc, c30), _mm256_storeu_pd(c + 3 * ldc + 4, c31), _mm256_storeu_pd(c + 3 * ldc + 8, c32);
}
#endif

Kernel pick_kernel() {
#ifdef SCOREFLOW_AVX2_KERNEL
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return kernel_avx2;
#endif
  return kernel_generic;
}

/// C[m×n] += A[m×k]·B[k×n] in float64 through the register-tiled kernel, m a multiple of 4 and n of
/// 12 (callers pad with zeros).
void gemm(int64_t m, int64_t n, int64_t k, const double* a, int64_t lda, const double* b, int64_t ldb, double* c,
          int64_t ldc, bool skip_zero) {
  static const Kernel kernel = pick_kernel();
  for (int64_t j = 0; j < n; j += kNr)
    for (int64_t i = 0; i < m; i += kMr) kernel(k, a + i * lda, lda, b + j, ldb, c + i * ldc + j, ldc, skip_zero);
}

/// Whole-batch products through LibTorch when it has MKL and the rows are long enough for the
/// products to dominate (PyTorch's own LibTorch: `torch::mm` reached 107–460 GFLOP/s on a 16-core
/// host, the kernel 5–15); the kernel otherwise (Debian's LibTorch calls reference BLAS, 0.4–1.7
/// GFLOP/s; and at d = 2 a LibTorch call costs more than the whole kernel). docs/performance.md,
/// "CPU: exact oracles". $SCOREFLOW_ORACLE_PRODUCTS=kernel|torch overrides it, for tests and benchmarks.
bool products_through_torch(int64_t d) {
  const char* env = std::getenv("SCOREFLOW_ORACLE_PRODUCTS");
  if (env && std::string(env) == "torch") return true;
  if (env && std::string(env) == "kernel") return false;
  return at::hasMKL() && d >= kTorchMinDims;
}

}  // namespace

IsotropicMixture::IsotropicMixture(const torch::Tensor& means, const torch::Tensor& variances,
                                   const torch::Tensor& log_weights) {
  torch::Tensor mu = means.to(torch::kCPU, torch::kFloat64).contiguous();
  TORCH_CHECK(mu.dim() == 2 && variances.numel() == mu.size(0) && log_weights.numel() == mu.size(0),
              "mixture: means must be [K, d] with K variances and K weights");
  k_ = mu.size(0);
  d_ = mu.size(1);
  torch_mm_ = products_through_torch(d_);
  kpad_ = round_up(k_, kMr);
  dpad_ = round_up(d_, kNr);
  centre_ = mu.mean(0);
  torch::Tensor centred = mu - centre_;
  means_.assign(kpad_ * dpad_, 0.0);
  norm2_.assign(kpad_, 0.0);
  var_.assign(kpad_, 1.0);
  log_weight_.assign(kpad_, -std::numeric_limits<double>::infinity());
  torch::Tensor v = variances.to(torch::kCPU, torch::kFloat64).reshape({k_}).contiguous();
  torch::Tensor lw = log_weights.to(torch::kCPU, torch::kFloat64).reshape({k_}).contiguous();
  const double* cp = centred.data_ptr<double>();
  for (int64_t k = 0; k < k_; ++k) {
    double n2 = 0;
    for (int64_t p = 0; p < d_; ++p) {
      const double value = cp[k * d_ + p];
      means_[k * dpad_ + p] = value;
      n2 += value * value;
    }
    norm2_[k] = n2;
    var_[k] = v.data_ptr<double>()[k];
    log_weight_[k] = lw.data_ptr<double>()[k];
    TORCH_CHECK(var_[k] >= 0, "mixture: variances must be >= 0, got ", var_[k]);
    if (var_[k] != var_[0]) uniform_var_ = false;
  }
}

torch::Tensor IsotropicMixture::means() const {
  torch::Tensor padded = torch::from_blob(const_cast<double*>(means_.data()), {kpad_, dpad_}, torch::kFloat64);
  return padded.narrow(0, 0, k_).narrow(1, 0, d_) + centre_;
}

namespace {

/// Per-thread scratch, kept between calls (fresh pages cost more than the arithmetic here).
struct Scratch {
  std::vector<double> xt, g, coef, acc, xn, m, s, a, s2, log_t;
  static void size(std::vector<double>& v, size_t n) {
    if (v.size() < n) v.resize(n);
  }
};
thread_local Scratch scratch;

}  // namespace

IsotropicMixture::Result IsotropicMixture::posterior(const torch::Tensor& x_in, const std::vector<double>& sigma2,
                                                     bool want_mean, bool want_resp,
                                                     torch::ScalarType mean_type) const {
  const int64_t b = x_in.size(0);
  torch::Tensor x = x_in.to(torch::kCPU).reshape({b, -1});
  if (x.scalar_type() != torch::kFloat && x.scalar_type() != torch::kDouble) x = x.to(torch::kDouble);
  x = x.contiguous();
  if (mean_type != torch::kFloat) mean_type = torch::kDouble;
  TORCH_CHECK(x.size(1) == d_, "mixture: input has ", x.size(1), " values per sample, the components have ", d_);
  TORCH_CHECK(sigma2.size() == 1 || static_cast<int64_t>(sigma2.size()) == b, "mixture: ", sigma2.size(),
              " sigmas for a batch of ", b);
  Result out;
  out.log_norm = torch::empty({b}, torch::kFloat64);
  if (want_mean) out.mean = torch::empty({b, d_}, mean_type);
  if (want_resp) out.resp = torch::empty({b, k_}, torch::kFloat64);
  if (b == 0) return out;
  if (torch_mm_) {
    run_torch(x, sigma2, out);
    return out;
  }
  if (x.scalar_type() == torch::kFloat) {
    if (mean_type == torch::kFloat)
      run<float, float>(x, sigma2, out);
    else
      run<float, double>(x, sigma2, out);
  } else {
    if (mean_type == torch::kFloat)
      run<double, float>(x, sigma2, out);
    else
      run<double, double>(x, sigma2, out);
  }
  return out;
}

template <typename In, typename Out>
void IsotropicMixture::run(const torch::Tensor& x, const std::vector<double>& sigma2, Result& out) const {
  const int64_t b = x.size(0);
  const In* xp = x.data_ptr<In>();
  const double* centre = centre_.data_ptr<double>();
  double* log_norm = out.log_norm.data_ptr<double>();
  Out* mean = out.mean.defined() ? out.mean.data_ptr<Out>() : nullptr;
  double* resp = out.resp.defined() ? out.resp.data_ptr<double>() : nullptr;

  // Sample rows per block: a multiple of 12, at most 48 (24 for long rows, so that the block stays
  // in L2), and enough blocks for every thread.
  const int64_t max_rows = d_ > 1024 ? 24 : 48;
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t nblocks = std::max((b + max_rows - 1) / max_rows, std::min(threads, (b + kNr - 1) / kNr));
  const int64_t bb = std::min(max_rows, round_up((b + nblocks - 1) / nblocks, kNr));
  const int64_t blocks = (b + bb - 1) / bb;
  const int64_t kb = std::min(kComponentBlock, kpad_);
  const double half_d = 0.5 * static_cast<double>(d_);
  const double kNegInf = -std::numeric_limits<double>::infinity();

  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    Scratch& w = scratch;
    Scratch::size(w.xt, d_ * bb), Scratch::size(w.g, kb * bb), Scratch::size(w.coef, bb * kb);
    Scratch::size(w.acc, mean ? bb * dpad_ : 0);
    for (auto* v : {&w.xn, &w.m, &w.s, &w.a, &w.s2, &w.log_t}) Scratch::size(*v, bb);
    double *xt = w.xt.data(), *g = w.g.data(), *coef = w.coef.data(), *acc = w.acc.data();
    double *xn = w.xn.data(), *m = w.m.data(), *s = w.s.data(), *a = w.a.data(), *s2 = w.s2.data();
    double* log_t = w.log_t.data();
    for (int64_t blk = first; blk < last; ++blk) {
      const int64_t i0 = blk * bb, rows = std::min(bb, b - i0);
      // The block, centred and transposed ([d, bb], zero columns past the batch), and its norms.
      if (rows < bb) std::fill(xt, xt + d_ * bb, 0.0);
      for (int64_t r = 0; r < rows; ++r) {
        const In* xr = xp + (i0 + r) * d_;
        double n2 = 0;
        for (int64_t p = 0; p < d_; ++p) {
          const double value = static_cast<double>(xr[p]) - centre[p];
          xt[p * bb + r] = value;
          n2 += value * value;
        }
        xn[r] = n2;
        s2[r] = sigma2.size() == 1 ? sigma2[0] : sigma2[i0 + r];
        log_t[r] = std::log(var_[0] + s2[r]);
        m[r] = kNegInf;
        s[r] = 0;
        a[r] = 0;
      }
      std::fill(coef, coef + bb * kb, 0.0);
      if (mean) std::fill(acc, acc + bb * dpad_, 0.0);
      for (int64_t k0 = 0; k0 < kpad_; k0 += kb) {
        const int64_t kw = std::min(kb, kpad_ - k0);
        const double* mk = means_.data() + k0 * dpad_;
        // Product 1: g = M_block · x_blockᵀ, [kw, bb].
        std::fill(g, g + kw * bb, 0.0);
        gemm(kw, bb, d_, mk, dpad_, xt, bb, g, bb, false);
        for (int64_t r = 0; r < rows; ++r) {
          double* l = coef + r * kb;  // logits first, then the product-2 coefficients
          double block_max = kNegInf;
          for (int64_t j = 0; j < kw; ++j) {
            const int64_t k = k0 + j;
            const double t = var_[k] + s2[r];
            const double dist = std::max(0.0, xn[r] - 2 * g[j * bb + r] + norm2_[k]);
            const double lt = uniform_var_ ? log_t[r] : std::log(t);
            l[j] = log_weight_[k] - 0.5 * dist / t - half_d * lt;
            block_max = std::max(block_max, l[j]);
          }
          if (resp)
            for (int64_t j = 0; j < kw && k0 + j < k_; ++j) resp[(i0 + r) * k_ + k0 + j] = l[j];
          const double m_new = std::max(m[r], block_max);
          const double scale = std::exp(m[r] - m_new);  // 0 on the first block
          s[r] *= scale;
          a[r] *= scale;
          if (mean && k0 > 0 && scale != 1) {
            double* ar = acc + r * dpad_;
            for (int64_t p = 0; p < dpad_; ++p) ar[p] *= scale;
          }
          for (int64_t j = 0; j < kw; ++j) {
            const int64_t k = k0 + j;
            const double e = std::exp(l[j] - m_new), t = var_[k] + s2[r];
            s[r] += e;
            a[r] += e * (var_[k] / t);
            l[j] = e * (s2[r] / t);
          }
          m[r] = m_new;
        }
        // Product 2: acc += coef · M_block, [bb, dpad].
        if (mean) gemm(bb, dpad_, kw, coef, kb, mk, dpad_, acc, dpad_, true);
      }
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = i0 + r;
        log_norm[i] = m[r] + std::log(s[r]);
        if (mean) {
          // E[x0|x] = Σ_k r_k (σ²/t_k μ_k + v_k/t_k x) in centred coordinates, plus the centre.
          const double inv_s = 1 / s[r], shrink = a[r] / s[r];
          const double* ar = acc + r * dpad_;
          const In* xr = xp + i * d_;
          Out* out_row = mean + i * d_;
          for (int64_t p = 0; p < d_; ++p)
            out_row[p] =
                static_cast<Out>(ar[p] * inv_s + shrink * (static_cast<double>(xr[p]) - centre[p]) + centre[p]);
        }
        if (resp)
          for (int64_t k = 0; k < k_; ++k) resp[i * k_ + k] = std::exp(resp[i * k_ + k] - log_norm[i]);
      }
    }
  });
}

void IsotropicMixture::run_torch(const torch::Tensor& x, const std::vector<double>& sigma2, Result& out) const {
  // The same streamed log-sum-exp as run(), over the whole batch at once: each component block is
  // two large products through LibTorch's (multi-threaded) BLAS and a few element-wise passes over
  // [B, block]; no [B, K, d] temporary.
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const int64_t b = x.size(0);
  torch::Tensor xc = x.to(torch::kFloat64) - centre_;  // [B, d], centred
  torch::Tensor xn = xc.square().sum(1, true);         // [B, 1]
  torch::Tensor s2 =
      sigma2.size() == 1 ? torch::full({b, 1}, sigma2[0], f64) : torch::tensor(sigma2, f64).reshape({b, 1});
  auto row = [&](const std::vector<double>& v) {
    return torch::from_blob(const_cast<double*>(v.data()), {1, k_}, f64);
  };
  const torch::Tensor means = torch::from_blob(const_cast<double*>(means_.data()), {k_, d_}, {dpad_, 1}, f64);
  const torch::Tensor norm2 = row(norm2_), var = row(var_), log_weight = row(log_weight_);
  const int64_t kb = std::max<int64_t>(kComponentBlock, kTorchBlockValues / b / kComponentBlock * kComponentBlock);
  const double half_d = 0.5 * static_cast<double>(d_);
  torch::Tensor m = torch::full({b, 1}, -std::numeric_limits<double>::infinity(), f64);
  torch::Tensor s = torch::zeros({b, 1}, f64), a = torch::zeros({b, 1}, f64);
  torch::Tensor acc = out.mean.defined() ? torch::zeros({b, d_}, f64) : torch::Tensor();
  for (int64_t k0 = 0; k0 < k_; k0 += kb) {
    const int64_t kw = std::min(kb, k_ - k0);
    const torch::Tensor mk = means.narrow(0, k0, kw), vk = var.narrow(1, k0, kw);
    torch::Tensor t = vk + s2;  // [B, kw] v_k + σ²
    torch::Tensor l = torch::mm(xc, mk.t()).mul_(-2).add_(xn).add_(norm2.narrow(1, k0, kw)).clamp_min_(0);
    l.div_(t).mul_(-0.5).add_(log_weight.narrow(1, k0, kw)).sub_(t.log().mul_(half_d));  // logits
    if (out.resp.defined()) out.resp.narrow(1, k0, kw).copy_(l);
    torch::Tensor m_new = torch::maximum(m, std::get<0>(l.max(1, true)));
    torch::Tensor scale = (m - m_new).exp_();  // 0 on the first block
    torch::Tensor e = l.sub_(m_new).exp_();
    s.mul_(scale).add_(e.sum(1, true));
    torch::Tensor r = e.div_(t);  // e / (v_k + σ²)
    a.mul_(scale).add_((r * vk).sum(1, true));
    if (acc.defined()) acc.mul_(scale).addmm_(r.mul_(s2), mk);
    m = m_new;
  }
  out.log_norm.copy_((m + s.log()).reshape({b}));
  if (acc.defined())  // E[x0|x] = Σ_k r_k (σ²/t_k μ_k + v_k/t_k x) in centred coordinates, plus the centre
    out.mean.copy_(acc.div_(s).add_(xc.mul_(a.div(s))).add_(centre_));
  if (out.resp.defined()) out.resp.sub_(out.log_norm.unsqueeze(1)).exp_();
}

}  // namespace scoreflow
