#include "scoreflow/gamma_estimation.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <future>

#include "scoreflow/error.h"

namespace scoreflow {

std::vector<int64_t> make_trajectory(const std::string& name, const DiscreteChain& chain, int64_t K,
                                     const GammaTable* gamma) {
  if (K < 2) fail("a trajectory needs at least 2 timesteps (K >= 2), got ", K);
  if (K > chain.num_steps()) fail("K = ", K, " is larger than the model's ", chain.num_steps(), " training timesteps");
  if (name == "optimal") {
    if (!gamma)
      fail(Field{"trajectory"}, " optimal needs a Gamma file (", Field{"gamma"},
           " FILE from scoreflow estimate-gamma)");
    return optimal_trajectory(chain, *gamma, K);
  }
  if (name == "even" || name == "quadratic") return timesteps_by_name(name, chain.num_steps(), K);
  fail("unknown trajectory '", name, "'; valid: even, quadratic, optimal");
}

std::vector<double> trajectory_sigmas(const DiscreteChain& chain, const std::vector<int64_t>& trajectory) {
  std::vector<double> sigmas;
  for (auto it = trajectory.rbegin(); it != trajectory.rend(); ++it) sigmas.push_back(chain.sigma(*it));
  sigmas.push_back(0.0);
  return sigmas;
}

std::vector<double> trajectory_grid(const std::string& name, const DiscreteChain& chain, int64_t steps,
                                    const GammaTable* gamma, FinalStep final) {
  if (final == FinalStep::Zero) return trajectory_sigmas(chain, make_trajectory(name, chain, steps, gamma));
  std::vector<double> sigmas = trajectory_sigmas(chain, make_trajectory(name, chain, steps + 1, gamma));
  sigmas.pop_back();
  return sigmas;
}

namespace {

/// One network call of the estimation: images [begin, begin + count) at timestep t, batch b of t.
struct GammaWork {
  int64_t t, b, begin, count;
};

/// The host side of one call, x0 and its noise (float32 [count, ...shape]), pinned when the model
/// is on a GPU so that the copy can run asynchronously.
struct GammaBatch {
  torch::Tensor x0, eps;
};

GammaBatch prepare_batch(const io::Dataset& data, const GammaEstimation& job, const GammaWork& w, bool pin) {
  GammaBatch out;
  out.x0 = data.batch(w.begin, w.count);
  auto gen =
      at::make_generator<at::CPUGeneratorImpl>(job.seed * 1000003ULL + static_cast<uint64_t>(w.t) * 7919ULL + w.b);
  out.eps = at::randn(out.x0.sizes(), gen, torch::dtype(torch::kFloat32));
  if (pin) {
    out.x0 = out.x0.pin_memory();
    out.eps = out.eps.pin_memory();
  }
  return out;
}

}  // namespace

void estimate_gamma(const Model& model, const io::Dataset& data, const GammaEstimation& job, GammaTable& table,
                    const std::function<void(const GammaTable&, int64_t, double)>& on_timestep) {
  const DiscreteChain chain = chain_of(model);
  if (job.num_images < 1) fail(Field{"num_images"}, " must be >= 1, got ", job.num_images);
  if (job.num_images > data.size())
    fail(Field{"num_images"}, " ", job.num_images, " is more than the dataset's ", data.size(), " items");
  if (job.batch < 1) fail(Field{"batch"}, " must be >= 1, got ", job.batch);
  if (data.shape() != model.metadata().shape)
    fail("dataset items have shape ", c10::IntArrayRef(data.shape()), " but the model takes ",
         c10::IntArrayRef(model.metadata().shape));
  std::vector<GammaWork> work;
  for (int64_t t : job.timesteps) {
    if (t < 1 || t > chain.num_steps()) fail("timestep ", t, " is outside [1, ", chain.num_steps(), "]");
    if (table.has(t)) continue;  // finished in an earlier (interrupted) run
    // This shard's batches (all of them unless job.first_batch/end_batch say otherwise).
    const int64_t num_batches = (job.num_images + job.batch - 1) / job.batch;
    const int64_t end_batch = job.end_batch < 0 ? num_batches : std::min(job.end_batch, num_batches);
    for (int64_t b = std::max<int64_t>(job.first_batch, 0); b < end_batch; ++b) {
      const int64_t begin = b * job.batch;
      work.push_back({t, b, begin, std::min<int64_t>(job.batch, job.num_images - begin)});
    }
  }
  if (work.empty()) return;
  torch::NoGradGuard no_grad;
  const std::shared_ptr<const Model> shared(&model, [](const Model*) {});
  const torch::Device device = model.device();
  const bool gpu = !device.is_cpu();
  // One denoiser for every batch, unless the conditions have a row per image: then one per batch
  // (its Conditioning is that batch's rows), checked when its timestep is read back.
  const bool per_image = job.conditions.tables.rows > 1;
  Denoiser denoise(shared, job.conditions.range(0, 1, device));

  // Pipeline (GPU): a helper thread prepares batch i+1 (dataset read, seeded CPU noise, pinned
  // copy) while the network runs on batch i; per-sample norms stay on the device, and timestep t
  // is read back only after timestep t+1's calls are queued, so the device never waits for the
  // host. The noise is still drawn on the CPU from the (seed, t, b) generators, so the estimates
  // do not depend on the device or on the pipelining.
  struct Pending {
    int64_t t = 0;
    std::vector<torch::Tensor> norms;                  // [count] float64 per batch, on the device
    std::vector<int64_t> batches;                      // their batch indices
    std::vector<std::shared_ptr<Denoiser>> denoisers;  // per-image conditions: each batch's own
  } pending, current;
  auto last_finish = std::chrono::steady_clock::now();
  auto finish = [&](Pending& p) {
    if (p.norms.empty()) return;
    for (const auto& d : p.denoisers) d->check_finite();
    p.denoisers.clear();
    // One read-back per timestep (the only host sync), then batch by batch on the CPU in batch
    // order: the same arithmetic whatever the device, and what shard files replay exactly.
    const torch::Tensor all = torch::cat(p.norms).to(torch::kCPU);
    GammaAccumulator acc;
    int64_t offset = 0;
    for (size_t k = 0; k < p.norms.size(); ++k) {
      const int64_t n = p.norms[k].size(0);
      const GammaBatchStats stats = GammaBatchStats::of(all.narrow(0, offset, n));
      offset += n;
      acc.add(stats);
      if (job.on_batch) job.on_batch(p.t, p.batches[k], stats);
    }
    p.norms.clear();
    p.batches.clear();
    if (acc.count() == 0) return;
    table.set(p.t, acc);
    const auto now = std::chrono::steady_clock::now();
    const double secs = std::chrono::duration<double>(now - last_finish).count();
    last_finish = now;
    if (on_timestep) on_timestep(table, p.t, static_cast<double>(acc.count()) / std::max(secs, 1e-9));
  };
  std::future<GammaBatch> next =
      std::async(std::launch::async, prepare_batch, std::cref(data), std::cref(job), work[0], gpu);
  for (size_t i = 0; i < work.size(); ++i) {
    const GammaWork& w = work[i];
    GammaBatch host = next.get();
    if (i + 1 < work.size())
      next = std::async(std::launch::async, prepare_batch, std::cref(data), std::cref(job), work[i + 1], gpu);
    if (w.t != current.t) {  // `pending` was read back during this timestep's first call
      pending = std::move(current);
      current = Pending{w.t, {}, {}, {}};
    }
    const double sigma = chain.sigma(w.t);
    torch::Tensor x0 = host.x0.to(device, /*non_blocking=*/gpu);
    torch::Tensor eps = host.eps.to(device, /*non_blocking=*/gpu);
    torch::Tensor x = x0 + sigma * eps;  // σ-space x = x_t/α
    torch::Tensor denoised;
    if (per_image) {
      current.denoisers.push_back(std::make_shared<Denoiser>(shared, job.conditions.range(w.begin, w.count, device)));
      denoised = (*current.denoisers.back())(x, sigma);
    } else {
      denoised = denoise(x, sigma);
    }
    torch::Tensor eps_hat = (x - denoised) / sigma;
    current.norms.push_back(per_sample_sq_norm(eps_hat));
    current.batches.push_back(w.b);
    // Read the previous timestep back once this one's first call is queued.
    if (w.b == work.front().b) finish(pending);
  }
  finish(pending);
  finish(current);
  denoise.check_finite();
}

double forward_throughput(const Model& model, const io::Dataset& data, const GammaEstimation& job) {
  const DiscreteChain chain = chain_of(model);
  if (job.timesteps.size() < 2) fail(Field{"forward_only"}, " needs at least 2 timesteps (the first one warms up)");
  if (job.num_images < 1 || job.num_images > data.size())
    fail(Field{"num_images"}, " must be in [1, ", data.size(), "], got ", job.num_images);
  if (job.batch < 1) fail(Field{"batch"}, " must be >= 1, got ", job.batch);
  torch::NoGradGuard no_grad;
  // The network calls only: the first image's conditions (one shared row) stand for every batch.
  Denoiser denoise(std::shared_ptr<const Model>(&model, [](const Model*) {}),
                   job.conditions.range(0, 1, model.device()));
  const int64_t width = std::min<int64_t>(job.batch, job.num_images);
  torch::Tensor x0 = data.batch(0, width).to(model.device());
  torch::Tensor eps = torch::randn_like(x0);
  std::vector<torch::Tensor> sums;
  auto run_timestep = [&](int64_t t) {
    const double sigma = chain.sigma(t);
    torch::Tensor x = x0 + sigma * eps;
    for (int64_t begin = 0; begin < job.num_images; begin += job.batch) {
      const int64_t count = std::min<int64_t>(job.batch, job.num_images - begin);
      sums.push_back(denoise(x.narrow(0, 0, count), sigma).sum());
    }
  };
  auto sync = [&] {
    torch::stack(sums).sum().item<double>();  // waits for every queued call
    sums.clear();
  };
  run_timestep(job.timesteps[0]);
  sync();
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 1; i < job.timesteps.size(); ++i) run_timestep(job.timesteps[i]);
  sync();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(job.num_images) * static_cast<double>(job.timesteps.size() - 1) / std::max(secs, 1e-9);
}

}  // namespace scoreflow
