#include "scoreflow/gamma_estimation.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>

#include "scoreflow/error.h"

namespace scoreflow {

analytic::DiscreteChain chain_of(const Model& model) {
  const NoiseSchedule& s = model.metadata().schedule;
  if (s.type() != ScheduleType::VpDiscrete)
    fail("Analytic-DPM needs a discrete VP model (schedule vp_discrete); ", model.name(), " has ", s.describe());
  return analytic::DiscreteChain(s.alphas_cumprod());
}

int64_t chain_timestep(const Model& model, double sigma) {
  if (sigma == 0) return 0;
  const NoiseSchedule& s = model.metadata().schedule;
  if (s.type() != ScheduleType::VpDiscrete)
    fail("Analytic-DPM needs a discrete VP model (schedule vp_discrete); ", model.name(), " has ", s.describe());
  const double n = s.t_of_sigma(sigma);
  const double rounded = std::round(n);
  if (std::abs(n - rounded) > 1e-4 || std::abs(s.discrete_sigmas()[static_cast<size_t>(rounded)] - sigma) > 1e-6 * sigma)
    fail("sigma ", sigma, " is not one of the model's discrete noise levels (fractional timestep ", n,
         "); use a discrete grid: --trajectory even|quadratic|optimal or --schedule leading|trailing|linspace|quadratic");
  return static_cast<int64_t>(rounded) + 1;
}

analytic::GammaMeta gamma_meta_for(const Model& model) {
  analytic::GammaMeta meta;
  meta.model = model.name();
  meta.schedule = model.metadata().schedule.describe();
  return meta;
}

std::vector<int64_t> make_trajectory(const std::string& name, const analytic::DiscreteChain& chain, int64_t K,
                                     const analytic::GammaTable* gamma) {
  if (K < 2) fail("a trajectory needs at least 2 timesteps (K >= 2), got ", K);
  if (K > chain.num_steps()) fail("K = ", K, " is larger than the model's ", chain.num_steps(), " training timesteps");
  if (name == "optimal") {
    if (!gamma) fail("--trajectory optimal needs a Gamma file (--gamma FILE from scoreflow estimate-gamma)");
    return analytic::optimal_trajectory(chain, *gamma, K);
  }
  if (name == "even" || name == "quadratic") return analytic::timesteps_by_name(name, chain.num_steps(), K);
  fail("unknown trajectory '", name, "'; valid: even, quadratic, optimal");
}

std::vector<double> trajectory_sigmas(const analytic::DiscreteChain& chain, const std::vector<int64_t>& trajectory) {
  std::vector<double> sigmas;
  for (auto it = trajectory.rbegin(); it != trajectory.rend(); ++it) sigmas.push_back(chain.sigma(*it));
  sigmas.push_back(0.0);
  return sigmas;
}

void estimate_gamma(const Model& model, const io::Dataset& data, const GammaEstimation& job, analytic::GammaTable& table,
                    const std::function<void(const analytic::GammaTable&, int64_t, double)>& on_timestep) {
  const analytic::DiscreteChain chain = chain_of(model);
  if (job.num_images < 1) fail("--num-images must be >= 1, got ", job.num_images);
  if (job.num_images > data.size()) fail("--num-images ", job.num_images, " is more than the dataset's ", data.size(), " items");
  if (job.batch < 1) fail("--batch must be >= 1, got ", job.batch);
  if (data.shape() != model.metadata().shape)
    fail("dataset items have shape ", c10::IntArrayRef(data.shape()), " but the model takes ", c10::IntArrayRef(model.metadata().shape));
  torch::NoGradGuard no_grad;
  Denoiser denoise(std::shared_ptr<const Model>(&model, [](const Model*) {}));
  for (int64_t t : job.timesteps) {
    if (t < 1 || t > chain.num_steps()) fail("timestep ", t, " is outside [1, ", chain.num_steps(), "]");
    if (table.has(t)) continue;  // finished in an earlier (interrupted) run
    const auto start = std::chrono::steady_clock::now();
    const double sigma = chain.sigma(t);
    analytic::GammaAccumulator acc;
    const int64_t num_batches = (job.num_images + job.batch - 1) / job.batch;
    const int64_t end_batch = job.end_batch < 0 ? num_batches : std::min(job.end_batch, num_batches);
    for (int64_t b = std::max<int64_t>(job.first_batch, 0); b < end_batch; ++b) {
      const int64_t begin = b * job.batch;
      const int64_t count = std::min<int64_t>(job.batch, job.num_images - begin);
      torch::Tensor x0 = data.batch(begin, count).to(model.device());
      auto gen = at::make_generator<at::CPUGeneratorImpl>(job.seed * 1000003ULL + static_cast<uint64_t>(t) * 7919ULL + b);
      torch::Tensor eps = at::randn(x0.sizes(), gen, torch::dtype(torch::kFloat32)).to(x0.device());
      torch::Tensor x = x0 + sigma * eps;  // σ-space x = x_t/α
      torch::Tensor eps_hat = (x - denoise(x, sigma)) / sigma;
      const auto stats = analytic::GammaBatchStats::of(analytic::per_sample_sq_norm(eps_hat));
      acc.add(stats);
      if (job.on_batch) job.on_batch(t, b, stats);
    }
    denoise.check_finite();
    if (acc.count() == 0) continue;  // an empty shard
    table.set(t, acc);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (on_timestep) on_timestep(table, t, job.num_images / std::max(secs, 1e-9));
  }
}

}  // namespace scoreflow
