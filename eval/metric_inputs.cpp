#include "eval/metric_inputs.h"

#include "scoreflow/error.h"

namespace scoreflow::eval::detail {

torch::Tensor as_double(const torch::Tensor& t, int64_t dims, const std::string& what, torch::Device device) {
  if (!t.defined()) fail(what, " is an undefined tensor");
  if (t.dim() != dims) fail(what, " must have ", dims, " dimension(s), got shape ", t.sizes());
  if (!at::isFloatingType(t.scalar_type())) fail(what, " must be a floating-point tensor, got dtype ", t.scalar_type());
  return t.detach().to(device, torch::kFloat64).contiguous();
}

torch::Tensor rows_as_double(const torch::Tensor& t, const std::string& what, torch::Device device) {
  if (t.defined() && t.dim() != 2) fail(what, " must be feature rows [N, D], got shape ", t.sizes());
  return as_double(t, 2, what, device);
}

void check_finite_rows(const torch::Tensor& rows, const std::string& what, int64_t first_row) {
  const auto finite = torch::isfinite(rows).all(/*dim=*/1);
  if (finite.all().item<bool>()) return;
  const int64_t row = (~finite).nonzero()[0][0].item<int64_t>();
  fail(what, " row ", first_row + row, " contains NaN or Inf");
}

Eigen::MatrixXd to_eigen_matrix(const torch::Tensor& t) {
  return Eigen::Map<const MatrixXdRowMajor>(t.data_ptr<double>(), t.size(0), t.size(1));
}

torch::Tensor from_eigen_matrix(const Eigen::MatrixXd& m) {
  auto out = torch::empty({m.rows(), m.cols()}, torch::kFloat64);
  Eigen::Map<MatrixXdRowMajor>(out.data_ptr<double>(), m.rows(), m.cols()) = m;
  return out;
}

Eigen::VectorXd to_eigen_vector(const torch::Tensor& t) {
  return Eigen::Map<const Eigen::VectorXd>(t.data_ptr<double>(), t.numel());
}

}  // namespace scoreflow::eval::detail
