/// Gaussian 2-Wasserstein (Bures) distance, Fréchet distance (FID) and the PSD square root, in
/// float64 with Eigen's symmetric eigendecomposition (DESIGN.md §7).
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>

#include "eval/metric_inputs.h"
#include "scoreflow/error.h"
#include "scoreflow/metrics.h"

namespace scoreflow::metrics {
namespace {

// Relative tolerances: asymmetry and negative eigenvalues below these (times the largest
// magnitude) are rounding from float32 storage or accumulation; beyond them the input is wrong.
constexpr double kSymmetryTolerance = 1e-6;
constexpr double kNegativeEigenTolerance = 1e-8;

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

// Eigenvalues of symmetric `m`, with rounding-level negatives clamped to 0; throws if `m` is
// not positive semidefinite beyond the tolerance.
Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> psd_eigen(const Eigen::MatrixXd& m,
                                                         const std::string& what,
                                                         Eigen::VectorXd& clamped) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(m);
  if (eig.info() != Eigen::Success) fail("eigendecomposition of ", what, " did not converge");
  const auto& lambda = eig.eigenvalues();  // ascending
  const double scale = m.rows() ? lambda.cwiseAbs().maxCoeff() : 0.0;
  if (m.rows() && lambda(0) < -kNegativeEigenTolerance * scale)
    fail(what, " is not positive semidefinite: smallest eigenvalue ", lambda(0),
         " (largest magnitude ", scale, ")");
  clamped = lambda.cwiseMax(0.0);
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

double gaussian_w2_squared(const torch::Tensor& mu1, const torch::Tensor& sigma1,
                           const torch::Tensor& mu2, const torch::Tensor& sigma2) {
  const Eigen::VectorXd m1 = mean_vector(mu1, "mu1");
  const Eigen::VectorXd m2 = mean_vector(mu2, "mu2");
  const Eigen::MatrixXd s1 = symmetric_matrix(sigma1, "sigma1");
  const Eigen::MatrixXd s2 = symmetric_matrix(sigma2, "sigma2");
  if (s1.rows() != m1.size())
    fail("sigma1 is ", s1.rows(), "x", s1.cols(), " but mu1 has dimension ", m1.size());
  if (s2.rows() != m2.size())
    fail("sigma2 is ", s2.rows(), "x", s2.cols(), " but mu2 has dimension ", m2.size());
  if (m1.size() != m2.size())
    fail("dimension mismatch: first Gaussian has dimension ", m1.size(), ", second has ",
         m2.size());

  // tr (S1^½ S2 S1^½)^½ = Σ √λ_i of the symmetric PSD middle matrix; its eigenvalues equal those
  // of S1·S2, so this is the tr sqrtm(S1 S2) of the FID formula without a non-symmetric sqrtm.
  const Eigen::MatrixXd root1 = sqrtm_psd(s1, "sigma1");
  Eigen::MatrixXd middle = root1 * s2 * root1;
  middle = 0.5 * (middle + middle.transpose());
  Eigen::VectorXd lambda;
  psd_eigen(middle, "sigma1^½ sigma2 sigma1^½", lambda);
  const double tr_covmean = lambda.cwiseSqrt().sum();

  const double w2 = (m1 - m2).squaredNorm() + s1.trace() + s2.trace() - 2.0 * tr_covmean;
  // Rounding can leave −1e-16-scale values for identical inputs; a distance is ≥ 0.
  return std::max(w2, 0.0);
}

double frechet_distance(const torch::Tensor& mu1, const torch::Tensor& sigma1,
                        const torch::Tensor& mu2, const torch::Tensor& sigma2) {
  return gaussian_w2_squared(mu1, sigma1, mu2, sigma2);
}

double frechet_distance(const MomentAccumulator& a, const MomentAccumulator& b) {
  return gaussian_w2_squared(a.mean(), a.covariance(), b.mean(), b.covariance());
}

double gaussian_w2_squared_diagonal(const torch::Tensor& mu1, const torch::Tensor& var1,
                                    const torch::Tensor& mu2, const torch::Tensor& var2) {
  const auto m1 = detail::as_double(mu1, 1, "mu1");
  const auto m2 = detail::as_double(mu2, 1, "mu2");
  const auto v1 = detail::as_double(var1, 1, "var1");
  const auto v2 = detail::as_double(var2, 1, "var2");
  const int64_t d = m1.size(0);
  if (!torch::isfinite(m1).all().item<bool>() || !torch::isfinite(m2).all().item<bool>())
    fail("means contain NaN or Inf");
  if (m2.size(0) != d || v1.size(0) != d || v2.size(0) != d)
    fail("dimension mismatch: mu1 ", d, ", var1 ", v1.size(0), ", mu2 ", m2.size(0), ", var2 ",
         v2.size(0));
  if (!(v1 >= 0).all().item<bool>() || !(v2 >= 0).all().item<bool>())
    fail("variances must be finite and >= 0");
  return ((m1 - m2).square().sum() + (v1.sqrt() - v2.sqrt()).square().sum()).item<double>();
}

}  // namespace scoreflow::metrics
