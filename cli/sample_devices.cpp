#include "cli/sample_devices.h"

#include <mutex>
#include <optional>

#include "cli/shard.h"
#include "io/fsutil.h"
#include "scoreflow/error.h"

namespace scoreflow::cli {

void DeviceStores::remove() const {
  if (!dir.empty()) io::remove_tree(dir);
}

ChunkedResult run_on_devices(const Sampler& sampler, const std::vector<std::shared_ptr<const Model>>& models,
                             const SampleJob& job, const DeviceStores& stores, const ChunkCallback& on_chunk,
                             const BatchCallback& on_batch) {
  const int64_t n = static_cast<int64_t>(job.seeds.size());
  const int64_t k_devices = static_cast<int64_t>(models.size());
  if (k_devices < 1) fail("no devices to sample on");
  std::vector<ChunkedResult> parts(static_cast<size_t>(k_devices));
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (int64_t k = 0; k < k_devices; ++k) ranges.push_back(shard_range(n, job.batch, k, k_devices));
  std::mutex lock;
  int64_t done_all = 0;
  std::vector<int64_t> done(static_cast<size_t>(k_devices), 0);
  run_on_threads(k_devices, [&](int64_t k) {
    const int64_t begin = ranges[k].first, end = ranges[k].second;
    if (begin == end) return;  // fewer batches than devices
    SampleJob part = job;
    part.seeds.assign(job.seeds.begin() + begin, job.seeds.begin() + end);
    part.device = models[k]->device();
    if (job.init_noise.defined()) part.init_noise = job.init_noise.narrow(0, begin, end - begin);
    if (job.labels.defined()) part.labels = job.labels.narrow(0, begin, end - begin);
    if (!job.cond_rows.empty()) part.cond_rows.assign(job.cond_rows.begin() + begin, job.cond_rows.begin() + end);
    std::optional<io::ChunkStore> store;
    if (!stores.dir.empty())
      store.emplace(stores.dir + "/range-" + std::to_string(begin) + "-" + std::to_string(end), stores.settings,
                    stores.overwrite, stores.option);
    parts[k] = run_chunked(
        sampler, models[k], part, store ? &*store : nullptr,
        [&](int64_t b, const torch::Tensor& samples) {
          std::lock_guard<std::mutex> g(lock);
          if (on_chunk) on_chunk(begin + b, samples);
        },
        [&](int64_t d, int64_t) {
          std::lock_guard<std::mutex> g(lock);
          done_all += d - done[k];
          done[k] = d;
          if (on_batch) on_batch(done_all, n);
        },
        {});
  });
  ChunkedResult out;
  out.result.nfe = sampler.nfe_for(static_cast<int>(job.sigmas.size()) - 1, job.final);
  std::vector<torch::Tensor> samples;
  for (int64_t k = 0; k < k_devices; ++k) {
    if (ranges[k].first == ranges[k].second) continue;
    samples.push_back(parts[k].result.samples);
    out.result.nfe = parts[k].result.nfe;
    out.resumed += parts[k].resumed;
  }
  out.result.samples = torch::cat(samples);
  return out;
}

}  // namespace scoreflow::cli
