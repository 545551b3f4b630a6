/// MomentAccumulator: streaming float64 mean/covariance with shifted sums (Chan, Golub & LeVeque
/// 1983, "shifted data" algorithm), exact re-centring on merge.
#include "eval/metric_inputs.h"
#include "scoreflow/error.h"
#include "scoreflow/metrics.h"

namespace scoreflow::eval {

void MomentAccumulator::add(const torch::Tensor& features, bool check_finite) {
  // The sums stay on the device of the first batch (a GPU's features are not copied back per
  // batch); mean(), covariance() and the accessors return CPU tensors.
  const auto x = detail::rows_as_double(features, "features",
                                        dim_ >= 0            ? shift_.device()
                                        : features.defined() ? features.device()
                                                             : torch::kCPU);
  if (dim_ >= 0 && x.size(1) != dim_)
    fail("features have dimension ", x.size(1), " but the accumulator holds dimension ", dim_);
  if (x.size(0) == 0) return;
  if (check_finite) detail::check_finite_rows(x, "features", count_);

  if (dim_ < 0) {
    // The shift: this first batch's mean, so later sums stay small relative to the spread.
    dim_ = x.size(1);
    shift_ = x.mean(0);
    sum_ = torch::zeros({dim_}, x.options());
    outer_ = torch::zeros({dim_, dim_}, x.options());
  }
  const auto centered = x - shift_;
  sum_ += centered.sum(0);
  outer_.addmm_(centered.t(), centered);
  count_ += x.size(0);
}

void MomentAccumulator::merge(const MomentAccumulator& other) {
  if (other.count_ == 0) return;
  if (count_ == 0) {
    count_ = other.count_;
    dim_ = other.dim_;
    shift_ = other.shift_.clone();
    sum_ = other.sum_.clone();
    outer_ = other.outer_.clone();
    return;
  }
  if (other.dim_ != dim_) fail("cannot merge moment accumulators of dimensions ", dim_, " and ", other.dim_);

  // Re-centre the other shard on our shift: with y = x − c_other and δ = c_other − c,
  // Σ(y + δ) = S + nδ and Σ(y + δ)(y + δ)ᵀ = O + Sδᵀ + δSᵀ + nδδᵀ.
  const torch::Device device = shift_.device();
  const auto other_sum = other.sum_.to(device), other_outer = other.outer_.to(device);
  const auto delta = other.shift_.to(device) - shift_;
  const double n = static_cast<double>(other.count_);
  const auto s_delta = torch::outer(other_sum, delta);
  outer_ += other_outer + s_delta + s_delta.t() + n * torch::outer(delta, delta);
  sum_ += other_sum + n * delta;
  count_ += other.count_;
}

MomentAccumulator MomentAccumulator::from_sums(int64_t count, const torch::Tensor& shift, const torch::Tensor& sum,
                                               const torch::Tensor& outer) {
  MomentAccumulator acc;
  if (count < 0) fail("moment sums: count must be >= 0, got ", count);
  if (count == 0) return acc;
  const int64_t d = shift.dim() == 1 ? shift.size(0) : -1;
  if (d < 1 || sum.sizes() != shift.sizes() || outer.dim() != 2 || outer.size(0) != d || outer.size(1) != d)
    fail("moment sums have shapes shift ", shift.sizes(), ", sum ", sum.sizes(), ", outer ", outer.sizes(),
         "; expected [D], [D], [D, D]");
  acc.count_ = count;
  acc.dim_ = d;
  acc.shift_ = shift.to(torch::kCPU, torch::kFloat64).clone();
  acc.sum_ = sum.to(torch::kCPU, torch::kFloat64).clone();
  acc.outer_ = outer.to(torch::kCPU, torch::kFloat64).clone();
  return acc;
}

torch::Tensor MomentAccumulator::mean() const {
  if (count_ < 1) fail("mean needs at least 1 sample, got 0");
  return (shift_ + sum_ / static_cast<double>(count_)).to(torch::kCPU);
}

torch::Tensor MomentAccumulator::covariance() const {
  if (count_ < 2) fail("covariance needs at least 2 samples (unbiased, N − 1), got ", count_);
  const double n = static_cast<double>(count_);
  auto cov = ((outer_ - torch::outer(sum_, sum_) / n) / (n - 1.0)).to(torch::kCPU);
  // Exactly symmetric (addmm rounding can differ by an ulp across the diagonal).
  return 0.5 * (cov + cov.t());
}

}  // namespace scoreflow::eval
