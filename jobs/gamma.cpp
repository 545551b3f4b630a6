// Γ estimation split over shards and devices (scoreflow/jobs.h): each run keeps every batch's
// (count, Σv, M2) per timestep; replaying them in batch order through GammaAccumulator reproduces
// an unsplit Γ table bit for bit.
#include <mutex>

#include "scoreflow/discrete_chain.h"
#include "scoreflow/error.h"
#include "scoreflow/jobs.h"

namespace scoreflow::jobs {

GammaBatches estimate_gamma_batches(const std::vector<std::shared_ptr<const Model>>& models, const io::Dataset& data,
                                    const GammaEstimation& job, const std::function<void()>& on_timestep) {
  const int64_t k_devices = static_cast<int64_t>(models.size());
  if (job.batch < 1) fail(Field{"batch"}, " must be >= 1, got ", job.batch);
  const int64_t num_batches = (job.num_images + job.batch - 1) / job.batch;
  const int64_t first = job.first_batch, end = job.end_batch < 0 ? num_batches : job.end_batch;
  std::vector<GammaBatches> per_device(static_cast<size_t>(k_devices));
  for (GammaBatches& mine : per_device)
    for (int64_t t : job.timesteps) mine[t];  // every timestep present, even with no batch
  std::mutex lock;
  split_over_workers(end - first, 1, k_devices, [&](int64_t k, int64_t b0, int64_t b1) {
    GammaEstimation part = job;
    part.first_batch = first + b0;
    part.end_batch = first + b1;
    GammaBatches& mine = per_device[k];
    part.on_batch = [&](int64_t t, int64_t, const analytic::GammaBatchStats& s) { mine[t].push_back(s); };
    analytic::GammaTable scratch(gamma_meta_for(*models[k]), chain_of(*models[k]).num_steps());
    estimate_gamma(*models[k], data, part, scratch, [&](const analytic::GammaTable&, int64_t, double) {
      std::lock_guard<std::mutex> g(lock);
      if (on_timestep) on_timestep();
    });
  });
  GammaBatches out;
  for (const GammaBatches& d : per_device)  // devices hold consecutive batch runs
    for (const auto& [t, list] : d) out[t].insert(out[t].end(), list.begin(), list.end());
  return out;
}

void replay_gamma(const GammaBatches& batches, analytic::GammaTable& table) {
  for (const auto& [t, list] : batches) {
    analytic::GammaAccumulator acc;
    for (const auto& s : list) acc.add(s);
    if (acc.count() > 0) table.set(t, acc);
  }
}

namespace {

void write_gamma_shard(const std::string& path, const nlohmann::json& record, const GammaBatches& batches) {
  const int64_t T = static_cast<int64_t>(batches.size());
  const int64_t B = T ? static_cast<int64_t>(batches.begin()->second.size()) : 0;
  std::vector<int64_t> timesteps, count;
  std::vector<double> sum, m2;
  for (const auto& [t, list] : batches) {
    if (static_cast<int64_t>(list.size()) != B)
      fail("internal: timestep ", t, " has ", list.size(), " batches, not ", B);
    timesteps.push_back(t);
    for (const auto& s : list) count.push_back(s.count), sum.push_back(s.sum), m2.push_back(s.m2);
  }
  auto as_matrix = [&](auto& v, torch::ScalarType type) { return torch::from_blob(v.data(), {T, B}, type).clone(); };
  io::write_npz(path, {{"timesteps", io::from_tensor(torch::tensor(timesteps, torch::kLong))},
                       {"batch_count", io::from_tensor(as_matrix(count, torch::kLong))},
                       {"batch_sum", io::from_tensor(as_matrix(sum, torch::kFloat64))},
                       {"batch_m2", io::from_tensor(as_matrix(m2, torch::kFloat64))},
                       {kShardKey, record_array(record)}});
}

}  // namespace

std::pair<int64_t, int64_t> estimate_gamma_shard(const std::vector<std::shared_ptr<const Model>>& models,
                                                 const io::Dataset& data, const GammaEstimation& job,
                                                 const analytic::GammaMeta& meta, const Shard& shard,
                                                 const std::string& path, const std::function<void()>& on_timestep) {
  if (job.num_images < 1) fail(Field{"num_images"}, " must be >= 1, got ", job.num_images);
  if (job.num_images > data.size())
    fail(Field{"num_images"}, " ", job.num_images, " is more than the dataset's ", data.size(), " items");
  if (job.batch < 1) fail(Field{"batch"}, " must be >= 1, got ", job.batch);
  const auto [begin, end] = shard_range(job.num_images, job.batch, shard);
  GammaEstimation part = job;
  part.first_batch = begin / job.batch;
  part.end_batch = (end + job.batch - 1) / job.batch;
  const GammaBatches batches = estimate_gamma_batches(models, data, part, on_timestep);
  // Everything a merge needs to write the unsharded file, and what must agree across shards.
  io::Settings settings = model_settings(*models[0]);
  settings.pop_back();  // not the device: shards may run on different kinds
  settings.insert(settings.end(), {{"schedule", meta.schedule}, {"dataset", meta.dataset}});
  for (const auto& [k, v] : meta.settings) settings.emplace_back(k, v);
  nlohmann::json record = shard_record("gamma", shard, settings, begin, end, job.num_images);
  record["gamma_meta"] = {
      {"model", meta.model}, {"schedule", meta.schedule}, {"dataset", meta.dataset}, {"settings", meta.settings}};
  record["num_steps"] = chain_of(*models[0]).num_steps();
  write_gamma_shard(path, record, batches);
  return {begin, end};
}

}  // namespace scoreflow::jobs
