/// Gaussian 2-Wasserstein (Bures) distance, Fréchet distance (FID) and the PSD square root, in
/// float64 with Eigen's symmetric eigendecomposition (docs/design.md §6).
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <limits>

#include "eval/metric_inputs.h"
#include "scoreflow/error.h"
#include "scoreflow/metrics.h"

namespace scoreflow::eval {
namespace {

// Relative tolerances: asymmetry and negative eigenvalues below these (times the largest
// magnitude) are rounding from float32 storage or accumulation; beyond them the input is wrong.
// A singular covariance (fewer samples than dimensions) stored as float32, as pytorch-fid/ADM
// .npz statistics often are, has eigenvalues down to ~−1e-7·λ_max, hence the loose 1e-5.
constexpr double kSymmetryTolerance = 1e-6;
constexpr double kNegativeEigenTolerance = 1e-5;

// Checks `sigma` is a finite symmetric [D, D] matrix and returns it symmetrised, float64.
Eigen::MatrixXd symmetric_matrix(const torch::Tensor& sigma, const std::string& what) {
  const auto t = detail::as_double(sigma, 2, what);
  if (t.size(0) != t.size(1)) fail(what, " must be square [D, D], got shape ", t.sizes());
  Eigen::MatrixXd m = detail::to_eigen_matrix(t);
  if (!m.allFinite()) fail(what, " contains NaN or Inf");
  const double scale = std::max(m.cwiseAbs().maxCoeff(), 1e-300);
  const double asymmetry = (m - m.transpose()).cwiseAbs().maxCoeff();
  if (asymmetry > kSymmetryTolerance * scale)
    fail(what, " is not symmetric: max |S − Sᵀ| = ", asymmetry, " (max |S| = ", scale, ")");
  return 0.5 * (m + m.transpose());
}

// Eigendecomposition of symmetric `m` (eigenvectors only when `options` asks) with rounding-level
// eigenvalues (tiny or slightly negative) set to 0 in `clamped`; throws if `m` is not PSD beyond
// the tolerance.
Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> psd_eigen(const Eigen::MatrixXd& m, const std::string& what,
                                                         Eigen::VectorXd& clamped,
                                                         int options = Eigen::ComputeEigenvectors) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(m, options);
  if (eig.info() != Eigen::Success) fail("eigendecomposition of ", what, " did not converge");
  const auto& lambda = eig.eigenvalues();  // ascending
  const double scale = m.rows() ? lambda.cwiseAbs().maxCoeff() : 0.0;
  if (m.rows() && lambda(0) < -kNegativeEigenTolerance * scale)
    fail(what, " is not positive semidefinite: smallest eigenvalue ", lambda(0), " (largest magnitude ", scale, ")");
  // Below the numerical-rank threshold (n·ε·λ_max, as numpy.linalg.matrix_rank) an eigenvalue is
  // rounding noise; set it to exactly 0, since its square root (~1e-8·√λ_max) would not be small.
  const double rank_floor = static_cast<double>(m.rows()) * std::numeric_limits<double>::epsilon() * scale;
  clamped = lambda.unaryExpr([rank_floor](double l) { return l <= rank_floor ? 0.0 : l; });
  return eig;
}

Eigen::MatrixXd sqrtm_psd(const Eigen::MatrixXd& m, const std::string& what) {
  Eigen::VectorXd lambda;
  const auto eig = psd_eigen(m, what, lambda);
  const auto& v = eig.eigenvectors();
  return v * lambda.cwiseSqrt().asDiagonal() * v.transpose();
}

Eigen::VectorXd mean_vector(const torch::Tensor& mu, const std::string& what) {
  const auto t = detail::as_double(mu, 1, what);
  Eigen::VectorXd v = detail::to_eigen_vector(t);
  if (!v.allFinite()) fail(what, " contains NaN or Inf");
  return v;
}

}  // namespace

torch::Tensor sqrtm_psd(const torch::Tensor& sigma) {
  return detail::from_eigen_matrix(sqrtm_psd(symmetric_matrix(sigma, "matrix"), "matrix"));
}

double gaussian_w2_squared(const torch::Tensor& mu1, const torch::Tensor& sigma1, const torch::Tensor& mu2,
                           const torch::Tensor& sigma2) {
  const Eigen::VectorXd m1 = mean_vector(mu1, "mu1");
  const Eigen::VectorXd m2 = mean_vector(mu2, "mu2");
  const Eigen::MatrixXd s1 = symmetric_matrix(sigma1, "sigma1");
  const Eigen::MatrixXd s2 = symmetric_matrix(sigma2, "sigma2");
  if (s1.rows() != m1.size()) fail("sigma1 is ", s1.rows(), "x", s1.cols(), " but mu1 has dimension ", m1.size());
  if (s2.rows() != m2.size()) fail("sigma2 is ", s2.rows(), "x", s2.cols(), " but mu2 has dimension ", m2.size());
  if (m1.size() != m2.size())
    fail("dimension mismatch: first Gaussian has dimension ", m1.size(), ", second has ", m2.size());

  // tr (S1^½ S2 S1^½)^½ = Σ √μ_i over the eigenvalues μ of the symmetric PSD middle matrix; they
  // equal those of S1·S2, so this is the tr sqrtm(S1 S2) of the FID formula without a
  // non-symmetric sqrtm. With S1 = V Λ Vᵀ the middle matrix is orthogonally similar to
  // Λ^½ (Vᵀ S2 V) Λ^½: two products and an eigenvalues-only solve instead of forming S1^½.
  Eigen::VectorXd lambda1;
  const auto eig1 = psd_eigen(s1, "sigma1", lambda1);
  const Eigen::MatrixXd& v = eig1.eigenvectors();
  const Eigen::VectorXd root_lambda1 = lambda1.cwiseSqrt();
  Eigen::MatrixXd middle = root_lambda1.asDiagonal() * (v.transpose() * s2 * v) * root_lambda1.asDiagonal();
  middle = 0.5 * (middle + middle.transpose());
  Eigen::VectorXd lambda;
  psd_eigen(middle, "sigma1^½ sigma2 sigma1^½", lambda, Eigen::EigenvaluesOnly);
  const double tr_covmean = lambda.cwiseSqrt().sum();

  const double w2 = (m1 - m2).squaredNorm() + s1.trace() + s2.trace() - 2.0 * tr_covmean;
  // Rounding can leave −1e-16-scale values for identical inputs; a distance is ≥ 0.
  return std::max(w2, 0.0);
}

double frechet_distance(const torch::Tensor& mu1, const torch::Tensor& sigma1, const torch::Tensor& mu2,
                        const torch::Tensor& sigma2) {
  return gaussian_w2_squared(mu1, sigma1, mu2, sigma2);
}

double frechet_distance(const MomentAccumulator& a, const MomentAccumulator& b) {
  return gaussian_w2_squared(a.mean(), a.covariance(), b.mean(), b.covariance());
}

double gaussian_w2_squared_diagonal(const torch::Tensor& mu1, const torch::Tensor& var1, const torch::Tensor& mu2,
                                    const torch::Tensor& var2) {
  const auto m1 = detail::as_double(mu1, 1, "mu1");
  const auto m2 = detail::as_double(mu2, 1, "mu2");
  const auto v1 = detail::as_double(var1, 1, "var1");
  const auto v2 = detail::as_double(var2, 1, "var2");
  const int64_t d = m1.size(0);
  if (!torch::isfinite(m1).all().item<bool>() || !torch::isfinite(m2).all().item<bool>())
    fail("means contain NaN or Inf");
  if (m2.size(0) != d || v1.size(0) != d || v2.size(0) != d)
    fail("dimension mismatch: mu1 ", d, ", var1 ", v1.size(0), ", mu2 ", m2.size(0), ", var2 ", v2.size(0));
  if (!(v1 >= 0).all().item<bool>() || !(v2 >= 0).all().item<bool>()) fail("variances must be finite and >= 0");
  return ((m1 - m2).square().sum() + (v1.sqrt() - v2.sqrt()).square().sum()).item<double>();
}

}  // namespace scoreflow::eval
