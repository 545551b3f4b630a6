// Resumable chunked sampling on one device or several (scoreflow/jobs.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <future>
#include <map>
#include <mutex>

#include "scoreflow/error.h"
#include "scoreflow/jobs.h"

namespace scoreflow::jobs {

io::Settings model_settings(const Model& model) {
  return {{"model", model_fingerprint(model)},
          {"model metadata", io::hash_text(model.metadata().json)},
          {"device", model.device().is_cuda() ? "cuda" : "cpu"}};
}

io::Settings conditioning_settings(const SampleJob& job) {
  if (job.cond.empty() && job.uncond.empty() && job.guidance_lo == 0 && std::isinf(job.guidance_hi) &&
      job.guidance_rescale == 0)
    return {};
  return {{"conditioning", "cond " + tables_fingerprint(job.cond) + " uncond " + tables_fingerprint(job.uncond) +
                               " guidance " +
                               exact_list({job.guidance, job.guidance_lo, job.guidance_hi, job.guidance_rescale})}};
}

std::string exact(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", value);
  return buf;
}

std::string exact_list(const std::vector<double>& values) {
  std::string out;
  for (double v : values) out += exact(v) + ",";
  return out;
}

std::string chunk_folder(const std::string& output) {
  std::string base = output;
  while (base.size() > 1 && base.back() == '/') base.pop_back();  // "png/" is the folder "png"
  return base + ".parts";
}

void note_resumed(const std::string& dir, int64_t count, const char* what) {
  if (count > 0)
    std::fprintf(stderr, "note: resumed the unfinished run in '%s': %lld finished %s reused\n", dir.c_str(),
                 static_cast<long long>(count), what);
}

namespace {

/// Zero-padded so that names sort in seed order; indices are the whole job's.
std::string chunk_name(int64_t begin, int64_t end) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "samples-%09lld-%09lld", static_cast<long long>(begin), static_cast<long long>(end));
  return buf;
}

/// Finished chunks of an earlier run inside whole-job indices [first, first + n), non-overlapping:
/// local begin -> (local end, samples).
std::map<int64_t, std::pair<int64_t, torch::Tensor>> finished_chunks(const io::ChunkStore& store, int64_t first,
                                                                     int64_t n, const std::vector<int64_t>& shape) {
  std::map<int64_t, std::pair<int64_t, torch::Tensor>> out;
  int64_t covered_to = first;
  for (const std::string& name : store.chunks()) {
    long long begin = -1, end = -1;
    if (std::sscanf(name.c_str(), "samples-%lld-%lld", &begin, &end) != 2 || begin < covered_to || end <= begin ||
        end > first + n)
      continue;
    auto array = store.load(name);
    if (!array) continue;
    std::vector<int64_t> want{end - begin};
    want.insert(want.end(), shape.begin(), shape.end());
    if (array->dtype != "<f4" || array->shape != want) continue;
    out.emplace(begin - first, std::make_pair(static_cast<int64_t>(end - first), io::to_tensor(*array)));
    covered_to = end;
  }
  return out;
}

/// Seeds [begin, end) of `job` as a job of their own (per-seed inputs narrowed alike).
SampleJob slice(const SampleJob& job, int64_t begin, int64_t end) {
  SampleJob part = job;
  part.seeds.assign(job.seeds.begin() + begin, job.seeds.begin() + end);
  if (job.init_noise.defined()) part.init_noise = job.init_noise.narrow(0, begin, end - begin);
  if (job.labels.defined()) part.labels = job.labels.narrow(0, begin, end - begin);
  if (!job.cond_rows.empty()) part.cond_rows.assign(job.cond_rows.begin() + begin, job.cond_rows.begin() + end);
  return part;
}

}  // namespace

ChunkedResult run_chunked(const Sampler& sampler, std::shared_ptr<const Model> model, const SampleJob& job,
                          const ChunkOptions& options) {
  const int64_t n = static_cast<int64_t>(job.seeds.size());
  if (n == 0) fail(Field{"seeds"}, " is empty: no seeds to sample");
  if (job.batch < 1) fail(Field{"batch"}, " must be >= 1, got ", job.batch);
  const auto& shape = model->metadata().shape;
  if (job.init_noise.defined()) check_init_noise(job.init_noise, n, shape);
  io::ChunkStore* store = options.store;
  std::map<int64_t, std::pair<int64_t, torch::Tensor>> done;
  if (store) done = finished_chunks(*store, options.first_index, n, shape);
  // Writing a finished chunk (its resume copy, the caller's files) runs on a worker thread while
  // the next chunk samples, so the device never waits for the disk. One write is in flight at a
  // time and they keep seed order; a write's error surfaces at the next chunk or at the end.
  std::future<void> writing;
  auto write_behind = [&](std::function<void()> task) {
    if (writing.valid()) writing.get();
    writing = std::async(std::launch::async, std::move(task));
  };
  const ChunkCallback& on_chunk = options.on_chunk;
  ChunkedResult out;
  out.result.nfe = -1;
  std::vector<torch::Tensor> parts;
  for (int64_t begin = 0; begin < n;) {
    auto it = done.find(begin);
    if (it != done.end()) {
      // Finished by an earlier (killed) run.
      const auto& [end, samples] = it->second;
      parts.push_back(samples);
      out.resumed += end - begin;
      if (on_chunk) write_behind([&on_chunk, begin, samples = samples] { on_chunk(begin, samples); });
      begin = end;
    } else {
      // Up to one batch, stopping where a finished chunk starts.
      int64_t end = std::min(begin + job.batch, n);
      auto next = done.upper_bound(begin);
      if (next != done.end()) end = std::min(end, next->first);
      SampleJob part = slice(job, begin, end);
      part.batch = static_cast<int>(end - begin);
      SampleResult r = run_sampler(sampler, model, part, {}, options.on_step);
      out.result.nfe = r.nfe;
      parts.push_back(r.samples);
      const int64_t first = options.first_index;
      write_behind([store, &on_chunk, first, begin, end, samples = r.samples] {
        if (store) store->save(chunk_name(first + begin, first + end), io::from_tensor(samples));
        if (on_chunk) on_chunk(begin, samples);
      });
      begin = end;
    }
    if (options.on_batch) options.on_batch(begin, n);
  }
  if (writing.valid()) writing.get();
  if (out.result.nfe < 0) out.result.nfe = sampler.nfe_for(static_cast<int>(job.sigmas.size()) - 1, job.final);
  out.result.samples = torch::cat(parts);
  return out;
}

ChunkedResult run_on_devices(const Sampler& sampler, const std::vector<std::shared_ptr<const Model>>& models,
                             const SampleJob& job, const ChunkOptions& options) {
  const int64_t n = static_cast<int64_t>(job.seeds.size());
  const int64_t k_devices = static_cast<int64_t>(models.size());
  if (k_devices < 1) fail("no devices to sample on");
  if (n == 0) fail(Field{"seeds"}, " is empty: no seeds to sample");
  if (job.batch < 1) fail(Field{"batch"}, " must be >= 1, got ", job.batch);
  std::vector<ChunkedResult> parts(static_cast<size_t>(k_devices));
  std::mutex lock;
  int64_t done_all = 0;
  std::vector<int64_t> done(static_cast<size_t>(k_devices), 0);
  const auto slices = split_over_workers(n, job.batch, k_devices, [&](int64_t k, int64_t begin, int64_t end) {
    SampleJob part = slice(job, begin, end);
    part.device = models[k]->device();
    ChunkOptions mine;
    mine.store = options.store;
    mine.first_index = options.first_index + begin;
    if (options.on_chunk)
      mine.on_chunk = [&, begin](int64_t b, const torch::Tensor& samples) {
        std::lock_guard<std::mutex> g(lock);
        options.on_chunk(begin + b, samples);
      };
    mine.on_batch = [&, k](int64_t d, int64_t) {
      std::lock_guard<std::mutex> g(lock);
      done_all += d - done[k];
      done[k] = d;
      if (options.on_batch) options.on_batch(done_all, n);
    };
    parts[k] = run_chunked(sampler, models[k], part, mine);
  });
  ChunkedResult out;
  out.result.nfe = sampler.nfe_for(static_cast<int>(job.sigmas.size()) - 1, job.final);
  std::vector<torch::Tensor> samples;
  for (int64_t k = 0; k < k_devices; ++k) {
    if (slices[k].first == slices[k].second) continue;
    samples.push_back(parts[k].result.samples);
    out.result.nfe = parts[k].result.nfe;
    out.resumed += parts[k].resumed;
  }
  out.result.samples = torch::cat(samples);
  return out;
}

}  // namespace scoreflow::jobs
