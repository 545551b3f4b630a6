// A sampling job's files (scoreflow/jobs/sample.h): the chunk store it resumes from, per-seed
// PNGs, the .npz and the grid, on one device or several.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>

#include "io/fsutil.h"
#include "scoreflow/args.h"
#include "scoreflow/device.h"
#include "scoreflow/error.h"
#include "scoreflow/fingerprint.h"
#include "scoreflow/image.h"
#include "scoreflow/jobs/sample.h"
#include "scoreflow/npy.h"

namespace scoreflow::jobs {
namespace {

std::string seed_name(uint64_t seed) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "seed%06llu.png", static_cast<unsigned long long>(seed));
  return buf;
}

}  // namespace

std::vector<std::string> parse_devices(const std::string& text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  size_t at = 0;
  for (;;) {
    const size_t comma = text.find(',', at);
    const std::string item = text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    if (item.empty()) fail(Field{"devices"}, " '", text, "' has an empty entry; use e.g. cuda:0,cuda:1 or cpu,cpu");
    parse_device(item);  // refuses unknown names and missing GPUs
    out.push_back(item);
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

std::vector<std::shared_ptr<const Model>> open_on_devices(
    const std::function<std::shared_ptr<const Model>(const std::string& device)>& open,
    const std::vector<std::string>& devices, const std::string& default_device) {
  std::vector<std::shared_ptr<const Model>> models;
  for (const std::string& d : devices.empty() ? std::vector<std::string>{default_device} : devices)
    models.push_back(open(d));
  return models;
}

io::Settings sample_settings(const Model& model, const Sampler& sampler, const SampleJob& job,
                             const std::vector<uint64_t>& all_seeds, const SampleSettings& s) {
  io::Settings settings = model_settings(model);  // model, model metadata, device
  settings.insert(settings.end(), {{"sampler", sampler.name()},
                                   {"sampler args", s.sampler_args},
                                   {"sigmas", exact_list(job.sigmas)},
                                   {"final", final_step_name(job.final)},
                                   {"seeds", seeds_fingerprint(all_seeds)},
                                   {"init noise", s.init_noise.empty() ? "seeded" : io::hash_file(s.init_noise)},
                                   {"class", s.label},
                                   {"guidance", std::to_string(job.guidance)},
                                   // Per sample, results do not depend on the batch in exact arithmetic, but CPU conv
                                   // kernels round differently for another batch size: resume only with the same one.
                                   {"batch", std::to_string(job.batch)},
                                   {"dtype", s.dtype}});
  // Conditioning inputs decide the samples too, by content (absent for runs without them).
  const io::Settings conditioning = conditioning_settings(job);
  settings.insert(settings.end(), conditioning.begin(), conditioning.end());
  if (!s.cond_rows.empty()) settings.push_back({"cond rows", s.cond_rows});
  return settings;
}

void check_sample_outputs(const SampleOutputs& o, const ImageDecoder& decoder, const Shard& shard) {
  if ((!o.grid.empty() || !o.png_dir.empty()) && !decoder.image_shaped()) {
    std::ostringstream os;
    os << c10::IntArrayRef(decoder.image_shape());
    fail(Field{"outputs.grid"}, "/", Field{"outputs.png_dir"}, " need image-shaped samples [C,H,W] with C in 1,3,4; ",
         "this model's ", decoder.latent() ? "decoded image" : "sample", " shape is ", os.str(), " (use ",
         Field{"outputs.npz"}, ")");
  }
  if (o.grid.empty() && o.png_dir.empty() && o.npz.empty() && !o.result_only)
    fail("nothing to write: give ", Field{"outputs.grid"}, ", ", Field{"outputs.png_dir"}, ", ", Field{"outputs.npz"},
         " or ", Field{"outputs.result_only"});
  io::check_outputs({{"outputs.grid", shard.sharded() && !o.grid.empty() ? shard_path(o.grid, shard) : o.grid},
                     {"outputs.npz", shard.sharded() && !o.npz.empty() ? shard_path(o.npz, shard) : o.npz},
                     {"outputs.png_dir", o.png_dir, true}});
}

SampleJobResult run_sample_job(const Sampler& sampler, const std::vector<std::shared_ptr<const Model>>& models,
                               const SampleJob& job, const SampleJobOptions& options) {
  if (models.empty()) fail("run_sample_job: no model");
  const std::shared_ptr<const Model>& model = models.front();
  const SampleOutputs& o = options.outputs;
  const Shard& shard = options.shard;
  const ImageDecoder decoder = options.decoder ? *options.decoder : ImageDecoder::for_model(model);
  const std::vector<uint64_t>& all_seeds = options.all_seeds.empty() ? job.seeds : options.all_seeds;
  const std::vector<uint64_t>& seeds = job.seeds;
  const int64_t begin = options.first_index, end = begin + static_cast<int64_t>(seeds.size());
  check_sample_outputs(o, decoder, shard);
  SampleJobResult out;
  const std::string npz = shard.sharded() && !o.npz.empty() ? shard_path(o.npz, shard) : o.npz;
  const std::string grid = shard.sharded() && !o.grid.empty() ? shard_path(o.grid, shard) : o.grid;
  if (!o.png_dir.empty()) io::make_dirs(o.png_dir);

  // Finished chunks are kept next to the npz (else the PNG folder; a shard's in its own folder).
  const io::Settings settings = sample_settings(*model, sampler, job, all_seeds, options.settings);
  const bool keep_parts = !npz.empty() || !o.png_dir.empty();
  std::optional<io::ChunkStore> store;
  if (keep_parts && !seeds.empty())
    store.emplace(chunk_folder(!npz.empty()      ? npz
                               : shard.sharded() ? shard_path(o.png_dir, shard)
                                                 : o.png_dir),
                  settings, options.overwrite, npz.empty() ? "outputs.png_dir" : "outputs.npz");
  if (keep_parts) {  // temporaries of outputs a killed run was writing
    if (!o.png_dir.empty()) io::remove_stale_temporaries(o.png_dir, "seed");
    if (!npz.empty()) {
      const std::filesystem::path path(npz);
      io::remove_stale_temporaries(path.has_parent_path() ? path.parent_path().string() : ".",
                                   path.filename().string());
    }
  }
  ChunkOptions chunking;
  chunking.store = store ? &*store : nullptr;
  chunking.first_index = begin;
  if (!o.png_dir.empty())
    chunking.on_chunk = [&](int64_t first, const torch::Tensor& samples) {
      torch::Tensor images = decoder.uint8_nhwc(samples, options.decode_batch);
      for (int64_t i = 0; i < images.size(0); ++i)
        io::write_png(o.png_dir + "/" + seed_name(seeds[first + i]), images[i]);
    };
  chunking.on_batch = options.on_batch;
  chunking.on_step = options.on_step;
  ChunkedResult chunked;
  if (seeds.empty()) {  // an empty shard: fewer batches than shards
    std::vector<int64_t> empty{0};
    empty.insert(empty.end(), model->metadata().shape.begin(), model->metadata().shape.end());
    chunked.result.samples = torch::empty(empty, torch::kFloat32);
    chunked.result.nfe = sampler.nfe_for(static_cast<int>(job.sigmas.size()) - 1, job.final);
  } else if (models.size() > 1) {
    chunked = run_on_devices(sampler, models, job, chunking);
  } else {
    chunked = run_chunked(sampler, model, job, chunking);
  }
  out.result = chunked.result;
  out.resumed = chunked.resumed;
  const torch::Tensor& samples = out.result.samples;

  if (!npz.empty()) {
    std::vector<std::pair<std::string, io::NpyArray>> arrays;
    arrays.emplace_back("samples", io::from_tensor(samples));
    std::vector<int64_t> seed_values(seeds.begin(), seeds.end());
    arrays.emplace_back("seeds", io::from_tensor(torch::tensor(seed_values, torch::kLong)));
    // Latent models: `samples` stay latents, `images` are decoded.
    if (decoder.image_shaped())
      arrays.emplace_back("images", io::from_tensor(decoder.uint8_nhwc(samples, options.decode_batch)));
    if (job.labels.defined()) arrays.emplace_back("labels", io::from_tensor(job.labels));
    if (!job.cond_rows.empty())
      arrays.emplace_back("cond_rows", io::from_tensor(torch::tensor(job.cond_rows, torch::kLong)));
    // A shard's file says which run and which seeds it holds, for merge_shards.
    if (shard.sharded())
      arrays.emplace_back(kShardKey, record_array(shard_record("samples", shard, settings, begin, end,
                                                               static_cast<int64_t>(all_seeds.size()))));
    io::write_npz(npz, arrays);
    out.written.npz = npz;
  }
  if (!grid.empty() && !seeds.empty()) {
    io::write_png(grid, io::make_grid(decoder.uint8_nhwc(samples, options.decode_batch)));
    out.written.grid = grid;
  }
  out.written.png_dir = o.png_dir;  // written chunk by chunk
  if (store) store->remove();
  return out;
}

nlohmann::json sample_report(const std::shared_ptr<const Model>& model, const Sampler& sampler, const SampleJob& job,
                             const SampleJobOptions& o, const SampleJobResult& r) {
  nlohmann::json outputs = nlohmann::json::object();
  if (!r.written.npz.empty()) outputs["npz"] = r.written.npz;
  if (!r.written.grid.empty()) outputs["grid"] = r.written.grid;
  if (!r.written.png_dir.empty()) outputs["out_dir"] = r.written.png_dir;
  const torch::Tensor s = r.result.samples.to(torch::kFloat64);
  const bool any = s.numel() > 0;
  const auto end = o.first_index + static_cast<int64_t>(job.seeds.size());
  const double hi = job.guidance_hi;
  return {{"command", "sample"},
          {"model", model->name()},
          {"model_summary", model->summary()},
          {"sampler", sampler.name()},
          {"steps", static_cast<int>(job.sigmas.size()) - 1},
          {"nfe", r.result.nfe},
          {"sigmas", job.sigmas},
          {"num_samples", job.seeds.size()},
          {"shard", o.shard.to_json()},
          {"seed_range", {o.first_index, end}},
          {"batch", job.batch},
          {"dtype", o.settings.dtype},
          {"class", o.settings.label},
          {"guidance", job.guidance},
          {"cond_rows", job.cond_rows},
          {"guidance_interval", {job.guidance_lo, std::isinf(hi) ? nlohmann::json("inf") : nlohmann::json(hi)}},
          {"guidance_rescale", job.guidance_rescale},
          {"latent", o.decoder ? o.decoder->latent() : ImageDecoder::for_model(model).latent()},
          {"sample_mean", any ? s.mean().item<double>() : 0.0},
          {"sample_std", any ? s.std().item<double>() : 0.0},
          {"resumed_samples", r.resumed},
          {"outputs", outputs}};
}

}  // namespace scoreflow::jobs
