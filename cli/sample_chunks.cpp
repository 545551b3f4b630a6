#include "cli/sample_chunks.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <future>
#include <map>

#include "scoreflow/error.h"

namespace scoreflow::cli {

std::string input_fingerprint(const std::string& path) {
  if (path.empty()) return "(none)";
  if (path.rfind("builtin:", 0) == 0) return path;
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    // Image folders: names and sizes (hashing every image would cost as much as reading them).
    std::vector<std::string> entries;
    for (const auto& e : fs::recursive_directory_iterator(path, ec))
      if (e.is_regular_file(ec))
        entries.push_back(fs::relative(e.path(), path, ec).string() + ":" + std::to_string(e.file_size(ec)));
    std::sort(entries.begin(), entries.end());
    std::string listing;
    for (const auto& e : entries) listing += e + "\n";
    return "folder " + io::hash_text(listing);
  }
  return io::hash_file(path);
}

io::Settings model_settings(const ModelOptions& options, const Model& model) {
  return {{"model", input_fingerprint(options.model)},
          {"model metadata", io::hash_text(model.metadata().json)},
          {"device", model.device().is_cuda() ? "cuda" : "cpu"}};
}

std::string exact_list(const std::vector<double>& values) {
  std::string out;
  char buf[32];
  for (double v : values) std::snprintf(buf, sizeof buf, "%.17g,", v), out += buf;
  return out;
}

void note_resumed(const std::string& dir, int64_t count, const char* what) {
  if (count > 0)
    std::fprintf(stderr, "note: resumed the unfinished run in '%s': %lld finished %s reused\n", dir.c_str(),
                 static_cast<long long>(count), what);
}

void note_resumed(const io::ChunkStore* store) {
  if (store) note_resumed(store->dir(), store->loaded(), "chunks");
}

std::optional<io::ChunkStore> chunks_for(const std::string& output, io::Settings settings, bool overwrite,
                                         const std::string& option) {
  if (output.empty()) return std::nullopt;
  return std::optional<io::ChunkStore>(std::in_place, output + ".parts", std::move(settings), overwrite, option);
}
namespace {

/// Zero-padded so that names sort in seed order.
std::string chunk_name(int64_t begin, int64_t end) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "samples-%09lld-%09lld", static_cast<long long>(begin), static_cast<long long>(end));
  return buf;
}

/// Finished chunks of an earlier run that fit this job: [begin, end) -> samples.
std::map<int64_t, std::pair<int64_t, torch::Tensor>> finished_chunks(const io::ChunkStore& store, int64_t n,
                                                                     const std::vector<int64_t>& shape) {
  std::map<int64_t, std::pair<int64_t, torch::Tensor>> out;
  int64_t covered_to = 0;
  for (const std::string& name : store.chunks()) {
    long long begin = -1, end = -1;
    if (std::sscanf(name.c_str(), "samples-%lld-%lld", &begin, &end) != 2 || begin < covered_to || end <= begin ||
        end > n)
      continue;
    auto array = store.load(name);
    if (!array) continue;
    std::vector<int64_t> want{end - begin};
    want.insert(want.end(), shape.begin(), shape.end());
    if (array->dtype != "<f4" || array->shape != want) continue;
    out.emplace(begin, std::make_pair(static_cast<int64_t>(end), io::to_tensor(*array)));
    covered_to = end;
  }
  return out;
}

}  // namespace

ChunkedResult run_chunked(const Sampler& sampler, std::shared_ptr<const Model> model, const SampleJob& job,
                          io::ChunkStore* store, const ChunkCallback& on_chunk, const BatchCallback& on_batch,
                          const StepCallback& on_step) {
  const int64_t n = static_cast<int64_t>(job.seeds.size());
  if (n == 0) fail("no seeds to sample");
  if (job.batch < 1) fail("--batch must be >= 1, got ", job.batch);
  const auto& shape = model->metadata().shape;
  if (job.init_noise.defined()) check_init_noise(job.init_noise, n, shape);
  std::map<int64_t, std::pair<int64_t, torch::Tensor>> done;
  if (store) done = finished_chunks(*store, n, shape);
  // Writing a finished chunk (its resume copy, the caller's PNGs) runs on a worker thread while
  // the next chunk samples, so the device never waits for the disk. One write is in flight at a
  // time and they keep seed order; a write's error surfaces at the next chunk or at the end.
  std::future<void> writing;
  auto write_behind = [&](std::function<void()> task) {
    if (writing.valid()) writing.get();
    writing = std::async(std::launch::async, std::move(task));
  };
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
      SampleJob part = job;
      part.seeds.assign(job.seeds.begin() + begin, job.seeds.begin() + end);
      part.batch = static_cast<int>(end - begin);
      if (job.init_noise.defined()) part.init_noise = job.init_noise.narrow(0, begin, end - begin);
      if (job.labels.defined()) part.labels = job.labels.narrow(0, begin, end - begin);
      if (!job.cond_rows.empty()) part.cond_rows.assign(job.cond_rows.begin() + begin, job.cond_rows.begin() + end);
      SampleResult r = run_sampler(sampler, model, part, {}, on_step);
      out.result.nfe = r.nfe;
      parts.push_back(r.samples);
      write_behind([store, &on_chunk, begin, end, samples = r.samples] {
        if (store) store->save(chunk_name(begin, end), io::from_tensor(samples));
        if (on_chunk) on_chunk(begin, samples);
      });
      begin = end;
    }
    if (on_batch) on_batch(begin, n);
  }
  if (writing.valid()) writing.get();
  if (out.result.nfe < 0) out.result.nfe = sampler.nfe_for(static_cast<int>(job.sigmas.size()) - 1, job.final);
  out.result.samples = torch::cat(parts);
  return out;
}

}  // namespace scoreflow::cli
