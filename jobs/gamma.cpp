// Γ estimation split over shards and devices and resumable over a chunk store (scoreflow/jobs.h):
// each run keeps every batch's (count, Σv, M2) per timestep; replaying them in batch order through
// GammaAccumulator reproduces an unsplit, uninterrupted Γ table bit for bit.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <set>

#include "scoreflow/discrete_chain.h"
#include "scoreflow/error.h"
#include "scoreflow/jobs.h"

namespace scoreflow::jobs {

namespace {

using GammaDone = std::function<void(int64_t t, const std::vector<GammaBatchStats>& batches)>;

/// estimate_gamma_batches, calling `on_done(t, batches)` (one call at a time, any thread) once
/// every device has finished timestep t, with all its batches in batch order.
GammaBatches run_batches(const std::vector<std::shared_ptr<const Model>>& models, const io::Dataset& data,
                         const GammaEstimation& job, const GammaDone& on_done) {
  const int64_t k_devices = static_cast<int64_t>(models.size());
  if (job.batch < 1) fail(Field{"batch"}, " must be >= 1, got ", job.batch);
  const int64_t num_batches = (job.num_images + job.batch - 1) / job.batch;
  const int64_t first = job.first_batch, end = job.end_batch < 0 ? num_batches : job.end_batch;
  std::vector<GammaBatches> per_device(static_cast<size_t>(k_devices));
  for (GammaBatches& mine : per_device)
    for (int64_t t : job.timesteps) mine[t];  // every timestep present, even with no batch
  // The devices with batches to do: each reports every timestep once (split_over_workers' slices).
  int64_t active = 0;
  for (int64_t k = 0; k < k_devices; ++k) {
    const auto [b0, b1] = shard_range(end - first, 1, k, k_devices);
    if (b1 > b0) ++active;
  }
  std::map<int64_t, int64_t> finished_by;  // timestep -> devices done with it
  std::mutex lock;
  split_over_workers(end - first, 1, k_devices, [&](int64_t k, int64_t b0, int64_t b1) {
    GammaEstimation part = job;
    part.first_batch = first + b0;
    part.end_batch = first + b1;
    GammaBatches& mine = per_device[k];
    part.on_batch = [&](int64_t t, int64_t, const GammaBatchStats& s) { mine[t].push_back(s); };
    GammaTable scratch(gamma_meta_for(*models[k]), chain_of(*models[k]).num_steps());
    estimate_gamma(*models[k], data, part, scratch, [&](const GammaTable&, int64_t t, double) {
      std::lock_guard<std::mutex> g(lock);
      if (++finished_by[t] < active || !on_done) return;
      // Every device's batches of t are in (on_batch precedes on_timestep); devices hold
      // consecutive batch runs, so device order is batch order.
      std::vector<GammaBatchStats> all;
      for (const GammaBatches& d : per_device) all.insert(all.end(), d.at(t).begin(), d.at(t).end());
      on_done(t, all);
    });
  });
  GammaBatches out;
  for (const GammaBatches& d : per_device)
    for (const auto& [t, list] : d) out[t].insert(out[t].end(), list.begin(), list.end());
  return out;
}

void check_job(const GammaEstimation& job, const io::Dataset& data) {
  if (job.num_images < 1) fail(Field{"num_images"}, " must be >= 1, got ", job.num_images);
  if (job.num_images > data.size())
    fail(Field{"num_images"}, " ", job.num_images, " is more than the dataset's ", data.size(), " items");
  if (job.batch < 1) fail(Field{"batch"}, " must be >= 1, got ", job.batch);
}

/// Zero-padded so that the store lists timesteps in order.
std::string chunk_name(int64_t t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "gamma-t%06lld", static_cast<long long>(t));
  return buf;
}

/// A timestep's batches as [B, 3] float64 rows (count, Σv, M2): counts are exact in a double.
io::NpyArray encode(const std::vector<GammaBatchStats>& batches) {
  torch::Tensor rows = torch::empty({static_cast<int64_t>(batches.size()), 3}, torch::kFloat64);
  auto r = rows.accessor<double, 2>();
  for (size_t b = 0; b < batches.size(); ++b) {
    const auto i = static_cast<int64_t>(b);
    r[i][0] = static_cast<double>(batches[b].count);
    r[i][1] = batches[b].sum;
    r[i][2] = batches[b].m2;
  }
  return io::from_tensor(rows);
}

std::vector<GammaBatchStats> decode(const torch::Tensor& rows) {
  std::vector<GammaBatchStats> out;
  auto r = rows.accessor<double, 2>();
  for (int64_t b = 0; b < rows.size(0); ++b) out.push_back({static_cast<int64_t>(r[b][0]), r[b][1], r[b][2]});
  return out;
}

/// The batch range [first, end) of `job` (end_batch -1: to the last, capped at the last).
std::pair<int64_t, int64_t> batch_range(const GammaEstimation& job) {
  const int64_t num_batches = (job.num_images + job.batch - 1) / job.batch;
  const int64_t end = job.end_batch < 0 ? num_batches : std::min(job.end_batch, num_batches);
  const int64_t first = std::max<int64_t>(job.first_batch, 0);
  return {first, std::max(first, end)};
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

/// The shard file of `batches` (images [begin, end) of `job`).
void write_shard_file(const Model& model, const GammaEstimation& job, const GammaMeta& meta, const Shard& shard,
                      int64_t begin, int64_t end, const GammaBatches& batches, const std::string& path) {
  // Everything a merge needs to write the unsharded file, and what must agree across shards.
  nlohmann::json record = shard_record("gamma", shard, gamma_settings(model, meta), begin, end, job.num_images);
  record["gamma_meta"] = {
      {"model", meta.model}, {"schedule", meta.schedule}, {"dataset", meta.dataset}, {"settings", meta.settings}};
  record["num_steps"] = chain_of(model).num_steps();
  write_gamma_shard(path, record, batches);
}

/// The settings of a job's chunk store: gamma_settings and the batch range it covers.
io::Settings store_settings(const Model& model, const GammaMeta& meta, const GammaEstimation& part) {
  io::Settings settings = gamma_settings(model, meta);
  const auto [first, end] = batch_range(part);
  settings.emplace_back("batches", std::to_string(first) + "-" + std::to_string(end));
  return settings;
}

void note(const GammaJobOptions& options, const std::string& line) {
  if (options.on_note) options.on_note(line);
}

void note_store(const GammaJobOptions& options, const io::ChunkStore& store, int64_t resumed) {
  if (resumed > 0)
    note(options, "note: resumed the unfinished run in '" + store.dir() + "': " + std::to_string(resumed) +
                      " finished timesteps reused");
}

}  // namespace

GammaBatches estimate_gamma_batches(const std::vector<std::shared_ptr<const Model>>& models, const io::Dataset& data,
                                    const GammaEstimation& job, const std::function<void()>& on_timestep) {
  return run_batches(models, data, job, [&](int64_t, const std::vector<GammaBatchStats>&) {
    if (on_timestep) on_timestep();
  });
}

void replay_gamma(const GammaBatches& batches, GammaTable& table) {
  for (const auto& [t, list] : batches) {
    GammaAccumulator acc;
    for (const auto& s : list) acc.add(s);
    if (acc.count() > 0) table.set(t, acc);
  }
}

io::Settings gamma_settings(const Model& model, const GammaMeta& meta) {
  io::Settings settings = model_settings(model);
  // Not the device: shards may run on different kinds.
  settings.erase(std::remove_if(settings.begin(), settings.end(), [](const auto& s) { return s.first == "device"; }),
                 settings.end());
  settings.insert(settings.end(), {{"schedule", meta.schedule}, {"dataset", meta.dataset}});
  for (const auto& [k, v] : meta.settings) settings.emplace_back(k, v);
  return settings;
}

GammaChunked estimate_gamma_chunked(const std::vector<std::shared_ptr<const Model>>& models, const io::Dataset& data,
                                    const GammaEstimation& job, const GammaChunkOptions& options) {
  check_job(job, data);
  const auto [first, end] = batch_range(job);
  const int64_t images = std::min(end * job.batch, job.num_images) - std::min(first * job.batch, job.num_images);
  GammaChunked out;
  GammaEstimation todo = job;
  todo.timesteps.clear();
  std::set<std::string> stored;
  if (options.store)
    for (const std::string& name : options.store->chunks()) stored.insert(name);
  for (int64_t t : job.timesteps) {
    out.batches[t];  // every timestep present, even with no batch
    if (stored.count(chunk_name(t))) {
      // A chunk of another shape (or unreadable) is simply redone.
      auto array = options.store->load(chunk_name(t));
      if (array && array->dtype == "<f8" && array->shape == std::vector<int64_t>{end - first, 3}) {
        out.batches[t] = decode(io::to_tensor(*array));
        ++out.resumed;
        continue;
      }
    }
    todo.timesteps.push_back(t);
  }
  if (todo.timesteps.empty()) return out;
  const int64_t total = static_cast<int64_t>(job.timesteps.size());
  int64_t done = out.resumed, computed = 0;
  using clock = std::chrono::steady_clock;
  auto last = clock::now(), first_done = last;
  const GammaBatches fresh =
      run_batches(models, data, todo, [&](int64_t t, const std::vector<GammaBatchStats>& batches) {
        if (options.store) options.store->save(chunk_name(t), encode(batches));
        const auto now = clock::now();
        const double secs = std::chrono::duration<double>(now - last).count();
        last = now;
        if (++computed == 1) first_done = now;
        ++done;
        if (options.on_timestep) options.on_timestep(done, total, static_cast<double>(images) / std::max(secs, 1e-9));
      });
  for (const auto& [t, list] : fresh) out.batches[t] = list;
  if (computed > 1)
    out.images_per_second = static_cast<double>(images) * static_cast<double>(computed - 1) /
                            std::max(std::chrono::duration<double>(clock::now() - first_done).count(), 1e-9);
  return out;
}

std::pair<int64_t, int64_t> estimate_gamma_shard(const std::vector<std::shared_ptr<const Model>>& models,
                                                 const io::Dataset& data, const GammaEstimation& job,
                                                 const GammaMeta& meta, const Shard& shard, const std::string& path,
                                                 const GammaChunkOptions& options) {
  check_job(job, data);
  const auto [begin, end] = shard_range(job.num_images, job.batch, shard);
  GammaEstimation part = job;
  part.first_batch = begin / job.batch;
  part.end_batch = (end + job.batch - 1) / job.batch;
  const GammaChunked chunked = estimate_gamma_chunked(models, data, part, options);
  write_shard_file(*models[0], job, meta, shard, begin, end, chunked.batches, path);
  return {begin, end};
}

GammaJobResult estimate_gamma_job(const std::vector<std::shared_ptr<const Model>>& models, const io::Dataset& data,
                                  const GammaEstimation& job, const GammaMeta& meta, const GammaJobOptions& options) {
  if (options.out.empty()) fail(options.out_option, " is required (the Gamma file to write)");
  check_job(job, data);
  const Model& model = *models.at(0);
  const Shard& shard = options.shard;
  GammaJobResult r;
  GammaChunkOptions chunking;
  chunking.on_timestep = options.on_timestep;
  if (shard.sharded()) {  // partial statistics for scoreflow merge
    r.path = shard_path(options.out, shard, ".npz");
    r.image_range = shard_range(job.num_images, job.batch, shard);
    const auto [begin, end] = r.image_range;
    note(options, shard.label() + " (from " + shard.source + "): images " + std::to_string(begin) + ".." +
                      std::to_string(end - 1) + " of " + std::to_string(job.num_images));
    GammaEstimation part = job;
    part.first_batch = begin / job.batch;
    part.end_batch = (end + job.batch - 1) / job.batch;
    io::ChunkStore store(chunk_folder(r.path), store_settings(model, meta, part), options.overwrite,
                         options.out_option);
    chunking.store = &store;
    const GammaChunked chunked = estimate_gamma_chunked(models, data, part, chunking);
    note_store(options, store, chunked.resumed);
    write_shard_file(model, job, meta, shard, begin, end, chunked.batches, r.path);
    store.remove();  // the shard file is written: nothing left to resume
    r.resumed = chunked.resumed;
    r.images_per_second = chunked.images_per_second;
    return r;
  }
  r.path = options.out;
  r.image_range = {0, job.num_images};
  const DiscreteChain chain = chain_of(model);
  GammaTable table(meta, chain.num_steps());
  GammaEstimation todo = job;
  if (std::filesystem::exists(options.out) && !options.overwrite) {
    // A finished run, or an interrupted one of a version that saved partial tables in the Γ file:
    // the same settings continue; anything else is refused, naming the setting.
    GammaTable done = GammaTable::load(options.out, chain, gamma_meta_for(model));
    for (const auto& [key, value] : meta.settings) {
      auto it = done.meta().settings.find(key);
      if (it == done.meta().settings.end() || it->second != value)
        fail(options.out_option, " ", options.out, " was made with ", key, "=",
             it == done.meta().settings.end() ? "(unset)" : it->second, ", this run has ", key, "=", value, "; use ",
             Field{"overwrite"}, " to start afresh");
    }
    table = done;
    note(options, "resuming " + options.out + ": " + std::to_string(table.entries().size()) + " of " +
                      std::to_string(job.timesteps.size()) + " timesteps done");
    todo.timesteps.clear();
    for (int64_t t : job.timesteps)
      if (!table.has(t)) todo.timesteps.push_back(t);
    r.resumed = static_cast<int64_t>(job.timesteps.size() - todo.timesteps.size());
  }
  io::ChunkStore store(chunk_folder(options.out), store_settings(model, meta, todo), options.overwrite,
                       options.out_option);
  chunking.store = &store;
  const GammaChunked chunked = estimate_gamma_chunked(models, data, todo, chunking);
  note_store(options, store, chunked.resumed);
  replay_gamma(chunked.batches, table);
  table.save(options.out);
  store.remove();  // the Γ file is written: nothing left to resume
  r.resumed += chunked.resumed;
  r.images_per_second = chunked.images_per_second;
  r.table = std::move(table);
  return r;
}

}  // namespace scoreflow::jobs
