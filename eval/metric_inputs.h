#pragma once
/// Internal helpers shared by eval/ metrics: shape checks and float64 CPU copies of inputs.
#include <torch/types.h>

#include <Eigen/Dense>
#include <string>

namespace scoreflow::eval::detail {

/// Checks `t` is a floating [N, D] tensor and returns it detached as contiguous float64 on `device`.
/// `what` names the argument in messages ("x", "features").
torch::Tensor rows_as_double(const torch::Tensor& t, const std::string& what, torch::Device device = torch::kCPU);

/// Checks `t` is floating with exactly `dims` dimensions, returns float64 contiguous on `device`.
torch::Tensor as_double(const torch::Tensor& t, int64_t dims, const std::string& what,
                        torch::Device device = torch::kCPU);

/// Throws naming the first row of `rows` [N, D] holding NaN/Inf (`first_row` offsets the index).
void check_finite_rows(const torch::Tensor& rows, const std::string& what, int64_t first_row = 0);

using MatrixXdRowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Copies a float64 CPU contiguous [D, D] tensor into an Eigen matrix (and back).
Eigen::MatrixXd to_eigen_matrix(const torch::Tensor& t);
torch::Tensor from_eigen_matrix(const Eigen::MatrixXd& m);
Eigen::VectorXd to_eigen_vector(const torch::Tensor& t);

}  // namespace scoreflow::eval::detail
