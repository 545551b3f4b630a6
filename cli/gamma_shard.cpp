#include "cli/gamma_shard.h"

#include <cstdio>
#include <mutex>

#include "io/fsutil.h"
#include "scoreflow/error.h"

namespace scoreflow::cli {

GammaBatches estimate_gamma_batches(const std::vector<std::shared_ptr<const Model>>& models, const io::Dataset& data,
                                    const GammaEstimation& job, const std::function<void()>& on_timestep) {
  const int64_t k_devices = static_cast<int64_t>(models.size());
  const int64_t num_batches = (job.num_images + job.batch - 1) / job.batch;
  const int64_t first = job.first_batch, end = job.end_batch < 0 ? num_batches : job.end_batch;
  std::vector<GammaBatches> per_device(static_cast<size_t>(k_devices));
  std::mutex lock;
  run_on_threads(k_devices, [&](int64_t k) {
    GammaEstimation part = job;
    const auto range = shard_range(end - first, 1, k, k_devices);
    const int64_t b0 = range.first, b1 = range.second;
    part.first_batch = first + b0;
    part.end_batch = first + b1;
    GammaBatches& mine = per_device[k];
    for (int64_t t : job.timesteps) mine[t];  // every timestep present, even with no batch
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

nlohmann::json run_gamma_shard(const std::vector<std::shared_ptr<const Model>>& models, const std::string& model_spec,
                               const io::Dataset& data, const GammaEstimation& job, const analytic::GammaMeta& meta,
                               const Shard& shard, const std::string& path) {
  if (job.num_images < 1) fail("--num-images must be >= 1, got ", job.num_images);
  if (job.num_images > data.size())
    fail("--num-images ", job.num_images, " is more than the dataset's ", data.size(), " items");
  if (job.batch < 1) fail("--batch must be >= 1, got ", job.batch);
  io::check_writable(path);
  const auto range = shard_range(job.num_images, job.batch, shard);
  const int64_t begin = range.first, end = range.second;
  std::fprintf(stderr, "%s (from %s): images %lld..%lld of %lld\n", shard.label().c_str(), shard.source.c_str(),
               static_cast<long long>(begin), static_cast<long long>(end) - 1, static_cast<long long>(job.num_images));
  GammaEstimation part = job;
  part.first_batch = begin / job.batch;
  part.end_batch = (end + job.batch - 1) / job.batch;
  Progress progress("estimate-gamma", static_cast<int64_t>(job.timesteps.size() * models.size()), "timesteps");
  int64_t finished = 0;
  const GammaBatches batches = estimate_gamma_batches(models, data, part, [&] { progress.update(++finished); });
  progress.finish();
  // Everything a merge needs to write the unsharded file, and what must agree across shards.
  io::Settings settings = {{"model", model_identity(model_spec)},
                           {"model metadata", io::hash_text(models[0]->metadata().json)},
                           {"schedule", meta.schedule},
                           {"dataset", meta.dataset}};
  for (const auto& [k, v] : meta.settings) settings.emplace_back(k, v);
  nlohmann::json record = shard_record("gamma", shard, settings, begin, end, job.num_images);
  record["gamma_meta"] = {
      {"model", meta.model}, {"schedule", meta.schedule}, {"dataset", meta.dataset}, {"settings", meta.settings}};
  record["num_steps"] = chain_of(*models[0]).num_steps();
  write_gamma_shard(path, record, batches);
  return {{"shard", shard.to_json()}, {"image_range", {begin, end}}, {"out", path}};
}

namespace {

torch::Tensor array(const std::map<std::string, io::NpyArray>& file, const std::string& key, const std::string& path) {
  auto it = file.find(key);
  if (it == file.end()) fail("'", path, "' has no array '", key, "'; is it a Gamma shard file?");
  return io::to_tensor(it->second);
}

}  // namespace

analytic::GammaTable merge_gamma_shards(const std::vector<std::map<std::string, io::NpyArray>>& files,
                                        const std::vector<nlohmann::json>& records,
                                        const std::vector<std::string>& paths) {
  analytic::GammaMeta meta;
  int64_t num_steps = 0;
  try {
    const nlohmann::json& m = records[0].at("gamma_meta");
    meta.model = m.at("model").get<std::string>();
    meta.schedule = m.at("schedule").get<std::string>();
    meta.dataset = m.at("dataset").get<std::string>();
    meta.settings = m.at("settings").get<std::map<std::string, std::string>>();
    num_steps = records[0].at("num_steps").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("'", paths[0], "': the Gamma shard record is incomplete (", e.what(), ")");
  }
  GammaBatches all;
  std::vector<int64_t> first_timesteps;
  for (size_t f = 0; f < files.size(); ++f) {
    const torch::Tensor t = array(files[f], "timesteps", paths[f]).to(torch::kLong).contiguous();
    const torch::Tensor count = array(files[f], "batch_count", paths[f]).to(torch::kLong).contiguous();
    const torch::Tensor sum = array(files[f], "batch_sum", paths[f]).to(torch::kFloat64).contiguous();
    const torch::Tensor m2 = array(files[f], "batch_m2", paths[f]).to(torch::kFloat64).contiguous();
    const int64_t T = t.numel();
    if (count.dim() != 2 || count.size(0) != T || sum.sizes() != count.sizes() || m2.sizes() != count.sizes())
      fail("'", paths[f], "': batch arrays have shapes ", count.sizes(), ", ", sum.sizes(), ", ", m2.sizes(), " for ",
           T, " timesteps");
    std::vector<int64_t> ts(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + T);
    if (f == 0) first_timesteps = ts;
    if (ts != first_timesteps) fail("'", paths[f], "' holds other timesteps than '", paths[0], "'");
    int64_t images = 0;
    const int64_t B = count.size(1);
    const int64_t* pc = count.data_ptr<int64_t>();
    const double *ps = sum.data_ptr<double>(), *pm = m2.data_ptr<double>();
    for (int64_t r = 0; r < T; ++r) {
      int64_t row_images = 0;
      for (int64_t b = 0; b < B; ++b) {
        analytic::GammaBatchStats s{pc[r * B + b], ps[r * B + b], pm[r * B + b]};
        row_images += s.count;
        all[ts[r]].push_back(s);
      }
      images = row_images;
    }
    const int64_t want = records[f].at("end").get<int64_t>() - records[f].at("begin").get<int64_t>();
    if (T > 0 && images != want)
      fail("'", paths[f], "' holds ", images, " images per timestep but its record says ", want);
  }
  analytic::GammaTable table(meta, num_steps);
  replay_gamma(all, table);
  return table;
}

}  // namespace scoreflow::cli
