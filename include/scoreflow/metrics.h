#pragma once
/// Distribution metrics on feature rows: streaming moments, Gaussian W2 / Fréchet distance (FID),
/// KID, and sliced W2. All arithmetic is float64 on the CPU; inputs may be any floating dtype on
/// any device. Failures throw scoreflow::Error naming the bad shape or count (docs/design.md §6).
#include <torch/types.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace scoreflow::eval {

/// Streaming, exactly mergeable mean and covariance of feature rows [N, D].
/// Stores count, a fixed shift c (the mean of the first non-empty batch), Σ(x − c) [D] and
/// Σ(x − c)(x − c)ᵀ [D, D] in float64 ("shifted data" sums: with c near the mean the
/// cancellation in Σxxᵀ − n·x̄x̄ᵀ disappears). merge() re-centres the other shard's sums on this
/// shift, an exact identity, so shards merged in any order equal one pass up to rounding.
class MomentAccumulator {
 public:
  MomentAccumulator() = default;

  /// Adds rows [N, D] (any floating dtype/device); N = 0 is a no-op. Throws on D mismatch or, with
  /// `check_finite`, a NaN/Inf entry (naming the row; on a GPU that check waits for the device).
  /// Without it the caller must check the rows itself before trusting the sums: a NaN makes
  /// them NaN.
  void add(const torch::Tensor& features, bool check_finite = true);
  /// Adds another accumulator's rows (same D).
  void merge(const MomentAccumulator& other);

  /// Rows seen so far.
  int64_t count() const { return count_; }
  /// Feature dimension D, or −1 before the first non-empty add.
  int64_t dim() const { return dim_; }
  /// Mean [D], float64 CPU; needs count ≥ 1.
  torch::Tensor mean() const;
  /// Unbiased covariance [D, D] (divides by N − 1, like numpy.cov and pytorch-fid), float64 CPU;
  /// needs count ≥ 2.
  torch::Tensor covariance() const;

  /// The stored sums, for shard files: shift c [D], Σ(x − c) [D], Σ(x − c)(x − c)ᵀ [D, D], on
  /// the CPU (undefined while empty).
  torch::Tensor shift() const { return on_cpu(shift_); }
  torch::Tensor sum() const { return on_cpu(sum_); }
  torch::Tensor outer() const { return on_cpu(outer_); }
  /// Rebuilds an accumulator from stored sums (count 0: an empty one); throws on bad shapes.
  static MomentAccumulator from_sums(int64_t count, const torch::Tensor& shift, const torch::Tensor& sum,
                                     const torch::Tensor& outer);

 private:
  static torch::Tensor on_cpu(const torch::Tensor& t) { return t.defined() ? t.to(torch::kCPU) : t; }
  int64_t count_ = 0;
  int64_t dim_ = -1;
  torch::Tensor shift_;  // [D]
  torch::Tensor sum_;    // [D]    Σ (x − shift)
  torch::Tensor outer_;  // [D, D] Σ (x − shift)(x − shift)ᵀ
};

/// Principal square root of a symmetric PSD matrix [D, D] via a float64 symmetric
/// eigendecomposition; rounding-level eigenvalues (below D·ε·λ_max, or negative within the
/// float32-storage tolerance 1e-5·λ_max) become 0, clearly negative ones throw. Returns [D, D]
/// float64 CPU.
torch::Tensor sqrtm_psd(const torch::Tensor& sigma);

/// Squared 2-Wasserstein distance between N(mu1, sigma1) and N(mu2, sigma2) (Bures):
/// ‖mu1 − mu2‖² + tr S1 + tr S2 − 2 tr (S1^½ S2 S1^½)^½. mu [D], sigma [D, D].
double gaussian_w2_squared(const torch::Tensor& mu1, const torch::Tensor& sigma1, const torch::Tensor& mu2,
                           const torch::Tensor& sigma2);

/// Fréchet distance of two Gaussians — the FID formula (Heusel et al. 2017); equals
/// gaussian_w2_squared. mu [D], sigma [D, D] (e.g. pytorch-fid/ADM `mu`, `sigma` statistics).
double frechet_distance(const torch::Tensor& mu1, const torch::Tensor& sigma1, const torch::Tensor& mu2,
                        const torch::Tensor& sigma2);
/// Fréchet distance between the mean/covariance of two feature streams (each count ≥ 2).
double frechet_distance(const MomentAccumulator& a, const MomentAccumulator& b);

/// Exact W2² between Gaussians with diagonal covariances: ‖mu1 − mu2‖² + Σ (√v1 − √v2)².
/// mu, var [D]; var ≥ 0.
double gaussian_w2_squared_diagonal(const torch::Tensor& mu1, const torch::Tensor& var1, const torch::Tensor& mu2,
                                    const torch::Tensor& var2);

/// Unbiased MMD² (Gretton et al. 2012) between rows x [m, D] and y [n, D] with the KID kernel
/// k(a, b) = (a·b / D + 1)³ (Bińkowski et al. 2018); m, n ≥ 2.
double mmd2_unbiased_polynomial(const torch::Tensor& x, const torch::Tensor& y);

/// KID settings: `subsets` random subsets of `subset_size` rows drawn without replacement from
/// each set (defaults of the KID paper / torch-fidelity), from a generator seeded by `seed`.
struct KidOptions {
  int64_t subsets = 100;
  int64_t subset_size = 1000;
  uint64_t seed = 0;
};

/// KID estimate: mean and standard deviation (population, ddof = 0, as torch-fidelity reports)
/// of the per-subset unbiased MMD².
struct KidResult {
  double mean = 0.0;
  double std = 0.0;
};

/// One subset pair: row indices into x and into y.
using KidSubset = std::pair<std::vector<int64_t>, std::vector<int64_t>>;

/// Kernel Inception Distance of x [N, D] vs y [M, D]; needs N, M ≥ subset_size ≥ 2.
KidResult kernel_inception_distance(const torch::Tensor& x, const torch::Tensor& y, const KidOptions& options = {});
/// KID over given subsets (to reproduce another tool's draw exactly); indices are checked.
KidResult kernel_inception_distance(const torch::Tensor& x, const torch::Tensor& y,
                                    const std::vector<KidSubset>& subsets);

/// Exact W2² between the empirical measures of x [N] and y [M] (uniform weights), i.e.
/// ∫₀¹ (F⁻¹(u) − G⁻¹(u))² du with both step quantile functions merged at the breakpoints i/N and
/// j/M — no interpolation error, N ≠ M allowed.
double w2_squared_1d(const torch::Tensor& x, const torch::Tensor& y);

/// Sliced W2 settings: number of random directions, uniform on the unit sphere S^{D−1}.
struct SlicedW2Options {
  int64_t projections = 256;
  uint64_t seed = 0;
};

/// Monte Carlo sliced W2²: mean over `projections` random unit directions u of
/// w2_squared_1d(x·u, y·u). x [N, D], y [M, D]; N ≠ M allowed. For a pure shift y = x + c it
/// estimates |c|²/D (E[(u·c)²] on the sphere). Meant for low-dimensional point sets.
double sliced_w2_squared(const torch::Tensor& x, const torch::Tensor& y, const SlicedW2Options& options = {});

}  // namespace scoreflow::eval
