#include "scoreflow/nll.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <functional>
#include <numeric>

#include "scoreflow/error.h"
#include "scoreflow/gamma_estimation.h"

namespace scoreflow {

NllResult compute_nll(const Model& model, const io::Dataset& data, const GammaTable* gamma, const NllJob& job,
                      const std::function<void(int64_t, int64_t)>& on_batch) {
  const DiscreteChain chain = chain_of(model);
  const ModelMetadata& meta = model.metadata();
  if (meta.data_min != -1 || meta.data_max != 1)
    fail("nll needs a model on data in [-1, 1] (the 256-bin decoder); ", model.name(), " has [", meta.data_min, ", ",
         meta.data_max, "]");
  if (job.variance == ReverseVariance::analytic && !gamma)
    fail(Field{"variance"}, " analytic needs ", Field{"gamma"}, " FILE");
  if (job.num_images < 1 || job.num_images > data.size())
    fail(Field{"num_images"}, " must be in [1, ", data.size(), "], got ", job.num_images);
  if (data.shape() != meta.shape)
    fail("dataset items have shape ", c10::IntArrayRef(data.shape()), " but the model takes ",
         c10::IntArrayRef(meta.shape));
  const std::vector<int64_t>& traj = job.trajectory;
  explicit_timesteps(traj, chain.num_steps());
  const DataRange range{meta.data_min, meta.data_max};
  GammaTable none(GammaMeta{}, chain.num_steps());
  NllResult r;
  r.variances = trajectory_variances(chain, traj, job.variance, gamma ? *gamma : none, range);
  const double dec_var = decoder_variance(chain);
  const int64_t d = std::accumulate(meta.shape.begin(), meta.shape.end(), int64_t{1}, std::multiplies<int64_t>());
  const double to_bpd = 1.0 / (static_cast<double>(d) * std::log(2.0));
  torch::NoGradGuard no_grad;
  const std::shared_ptr<const Model> shared(&model, [](const Model*) {});
  std::vector<torch::Tensor> totals;
  std::vector<double> step_sums(traj.size() - 1, 0.0);
  double prior_sum = 0, decoder_sum = 0;
  // x̂0 at chain timestep t from one fresh draw x_t ~ q(x_t|x0).
  auto x0_hat = [&](const Denoiser& denoise, const torch::Tensor& x0, int64_t t, uint64_t b) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(job.seed * 1000003ULL + static_cast<uint64_t>(t) * 7919ULL + b);
    torch::Tensor eps = at::randn(x0.sizes(), gen, torch::dtype(torch::kFloat32)).to(x0.device());
    const double sigma = chain.sigma(t);
    torch::Tensor x = denoise(x0 + sigma * eps, sigma);
    return job.clip_x0 ? x.clamp(range.lo, range.hi) : x;
  };
  for (int64_t begin = 0, b = 0; begin < job.num_images; begin += job.batch, ++b) {
    const int64_t count = std::min<int64_t>(job.batch, job.num_images - begin);
    torch::Tensor x0 = data.batch(begin, count).to(model.device());
    const Denoiser denoise(shared, job.conditions.range(begin, count, model.device()));
    auto per_image = [&](const torch::Tensor& nats) {
      return nats.to(torch::kCPU, torch::kFloat64).reshape({count, -1}).sum(1);
    };
    torch::Tensor prior = per_image(prior_kl(chain, x0));
    torch::Tensor total = prior.clone();
    prior_sum += prior.sum().item<double>();
    for (size_t k = 1; k < traj.size(); ++k) {
      const int64_t s = traj[k - 1], t = traj[k];
      torch::Tensor kl = per_image(step_kl(chain, s, t, x0, x0_hat(denoise, x0, t, b), r.variances[k - 1]));
      step_sums[k - 1] += kl.sum().item<double>();
      total += kl;
    }
    torch::Tensor mean = x0_hat(denoise, x0, traj.front(), b);
    torch::Tensor nll_dec = -per_image(
        discretized_gaussian_log_likelihood(x0, mean, torch::full_like(mean, dec_var, torch::dtype(torch::kFloat64))));
    decoder_sum += nll_dec.sum().item<double>();
    totals.push_back(total + nll_dec);
    denoise.check_finite();
    if (on_batch) on_batch(begin + count, job.num_images);
  }
  torch::Tensor bpd = torch::cat(totals) * to_bpd;
  const double n = static_cast<double>(job.num_images);
  r.count = job.num_images;
  r.bits_per_dim = bpd.mean().item<double>();
  r.std_err = job.num_images > 1 ? bpd.std().item<double>() / std::sqrt(n) : 0.0;
  r.prior = prior_sum / n * to_bpd;
  r.decoder = decoder_sum / n * to_bpd;
  for (double s : step_sums) {
    r.per_step.push_back(s / n * to_bpd);
    r.steps += s / n * to_bpd;
  }
  return r;
}

}  // namespace scoreflow
