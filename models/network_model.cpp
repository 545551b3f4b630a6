#include "models/network_model.h"

#include "models/sizes_text.h"
#include "scoreflow/error.h"
#include "scoreflow/prediction.h"

namespace scoreflow {

bool NetworkModel::keep_grad(const torch::Tensor& x) const {
  return has_autograd() && x.requires_grad() && torch::GradMode::is_enabled();
}

torch::Tensor NetworkModel::column(const std::vector<double>& v, const torch::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = static_cast<int64_t>(v.size());
  return torch::tensor(v, torch::kFloat64).to(x.device(), x.scalar_type()).reshape(shape);
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> NetworkModel::forward(
    const torch::Tensor& x, const std::vector<double>& sigma, const torch::Tensor& labels,
    const std::vector<torch::Tensor>& conds) const {
  if (!conds.empty() && conds.size() != meta_.conditions.size())
    fail("model ", path_, ": ", conds.size(), " conditioning inputs given, the metadata declares ",
         meta_.conditions.size());
  const torch::Tensor out = network_output(x, sigma, labels, conds);
  std::vector<int64_t> want(x.sizes().begin(), x.sizes().end());
  if (meta_.head != Head::None) want[1] *= 2;
  if (out.sizes() != c10::IntArrayRef(want))
    fail("model ", path_, ": ", output_source(), " returned shape ", sizes_text(out.sizes()), ", expected ",
         sizes_text(want),
         meta_.head != Head::None ? " (head " + head_name(meta_.head) + " doubles the channels)" : "");
  if (sigma.size() == 1)
    return {torch::scalar_tensor(meta_.schedule.alpha_of_sigma(sigma[0]), torch::kFloat64),
            torch::scalar_tensor(sigma[0], torch::kFloat64), out.to(x.scalar_type())};
  std::vector<double> a(sigma.size());
  for (size_t i = 0; i < sigma.size(); ++i) a[i] = meta_.schedule.alpha_of_sigma(sigma[i]);
  return {column(a, x), column(sigma, x), out.to(x.scalar_type())};
}

torch::Tensor NetworkModel::denoise_conditioned(const torch::Tensor& x, const std::vector<double>& sigma,
                                                const torch::Tensor& labels,
                                                const std::vector<torch::Tensor>& conds) const {
  torch::AutoGradMode grad_mode(keep_grad(x));
  auto [alpha, sig, out] = forward(x, sigma, labels, conds);
  return own(denoised_from_output(meta_.prediction, x, out.narrow(1, 0, x.size(1)), alpha, sig).to(x.scalar_type()),
             out);
}

std::pair<torch::Tensor, torch::Tensor> NetworkModel::denoise_with_head(const torch::Tensor& x,
                                                                        const std::vector<double>& sigma,
                                                                        const torch::Tensor& labels) const {
  if (meta_.head == Head::None) return Model::denoise_with_head(x, sigma, labels);
  if (meta_.prediction != Prediction::Eps) fail("model ", path_, ": a second-moment head needs eps prediction");
  torch::AutoGradMode grad_mode(keep_grad(x));
  auto [alpha, sig, out] = forward(x, sigma, labels, {});
  const int64_t c = x.size(1);
  torch::Tensor d = denoised_from_output(meta_.prediction, x, out.narrow(1, 0, c), alpha, sig).to(x.scalar_type());
  return {own(d, out), own(out.narrow(1, c, c).to(x.scalar_type()), out)};
}

}  // namespace scoreflow
