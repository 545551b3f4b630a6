// scoreflow sample: seeds → PNG grid / per-seed PNGs / .npz, with a --json summary.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "cli/common.h"
#include "cli/cond_options.h"
#include "cli/job_flags.h"
#include "cli/sampling_flags.h"
#include "io/fsutil.h"
#include "scoreflow/amed.h"
#include "scoreflow/checkpoint.h"
#include "scoreflow/error.h"
#include "scoreflow/gamma_estimation.h"
#include "scoreflow/image.h"
#include "scoreflow/jobs.h"
#include "scoreflow/npy.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "scoreflow/sigmas.h"

namespace scoreflow::cli {
namespace {

struct SampleOptions {
  ModelOptions model;
  SamplingFlags s;  // sampler, grid, seeds, class, guidance, conditioning, initial noise
  std::string out, out_dir, npz, dtype = "fp32";
  std::string shard, devices;  // scoreflow/jobs.h
  CLI::Option* device_option = nullptr;
  int batch = 64;
  bool json = false, overwrite = false, cuda_graph = false;
};

std::string seed_name(uint64_t seed) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "seed%06llu.png", static_cast<unsigned long long>(seed));
  return buf;
}

/// Everything that decides the samples (not --batch: samples do not depend on it), for the chunk
/// manifest that lets a killed run resume and refuses to mix in a run with other settings.
io::Settings resume_settings(const SampleOptions& o, const Model& model, const PreparedJob& p) {
  io::Settings settings = jobs::model_settings(model);  // model, model metadata, device
  settings.insert(settings.end(), {{"sampler", p.sampler->name()},
                                   {"sampler args", o.s.sampler_args},
                                   {"sigmas", jobs::exact_list(p.job.sigmas)},
                                   {"final", final_step_name(p.final)},
                                   {"seeds", seeds_fingerprint(p.all_seeds)},
                                   {"init noise", o.s.init_noise.empty() ? "seeded" : io::hash_file(o.s.init_noise)},
                                   {"class", o.s.label},
                                   {"guidance", std::to_string(o.s.guidance)},
                                   // Per sample, results do not depend on the batch in exact arithmetic, but CPU conv
                                   // kernels round differently for another batch size: resume only with the same one.
                                   {"batch", std::to_string(o.batch)},
                                   {"dtype", o.dtype}});
  // Conditioning inputs decide the samples too, by content (absent for runs without them, as before).
  const io::Settings conditioning = jobs::conditioning_settings(p.job);
  settings.insert(settings.end(), conditioning.begin(), conditioning.end());
  if (!o.s.cond.cond_rows.empty()) settings.push_back({"cond rows", o.s.cond.cond_rows});
  return settings;
}

void run(const SampleOptions& o) {
  auto start = std::chrono::steady_clock::now();
  // Everything that can be refused is checked before any sampling work.
  const torch::ScalarType dtype = parse_inference_dtype(o.dtype);
  const std::vector<std::string> devices = parse_devices(o.devices);
  if (!devices.empty() && o.device_option && o.device_option->count() > 0) fail("give --device or --devices, not both");
  ModelOptions model_options = o.model;
  if (!devices.empty()) model_options.device = devices[0];
  auto model = model_options.open();
  model->configure({dtype, o.cuda_graph});
  if (!model->inference_note().empty()) std::fprintf(stderr, "note: %s\n", model->inference_note().c_str());
  const ModelMetadata& meta = model->metadata();
  // This process's share (--shard i/n or the launcher's variables): whole batches of the seeds.
  const jobs::Shard shard = resolve_shard_flag(o.shard);
  const PreparedJob prepared = o.s.build(*model, o.batch, &shard);
  const Sampler* sampler = prepared.sampler.get();
  const FinalStep final = prepared.final;
  const std::vector<uint64_t>& all_seeds = prepared.all_seeds;
  const int64_t shard_begin = prepared.begin, shard_end = prepared.end;
  const SampleJob& job = prepared.job;
  const std::vector<uint64_t>& seeds = job.seeds;
  const std::vector<double>& sigmas = job.sigmas;
  const std::string out_grid = shard.sharded() && !o.out.empty() ? jobs::shard_path(o.out, shard) : o.out;
  const std::string out_npz = shard.sharded() && !o.npz.empty() ? jobs::shard_path(o.npz, shard) : o.npz;
  if (shard.sharded())
    std::fprintf(stderr, "%s (from %s): seeds %lld..%lld of %zu\n", shard.label().c_str(), shard.source.c_str(),
                 static_cast<long long>(shard_begin), static_cast<long long>(shard_end) - 1, all_seeds.size());
  if (shard.sharded() && seeds.empty())
    std::fprintf(
        stderr,
        "note: %s has no seeds (%zu seeds make fewer batches of %d than shards); lower --batch to spread them\n",
        shard.label().c_str(), all_seeds.size(), o.batch);
  if (!prepared.note.empty()) std::fprintf(stderr, "%s\n", prepared.note.c_str());

  const ImageDecoder decoder = o.s.cond.image_decoder(model);
  if ((!o.out.empty() || !o.out_dir.empty()) && !decoder.image_shaped()) {
    std::ostringstream os;
    os << c10::IntArrayRef(decoder.image_shape());
    fail("--out/--out-dir need image-shaped samples [C,H,W] with C in 1,3,4; this model's ",
         decoder.latent() ? "decoded image" : "sample", " shape is ", os.str(), " (use --npz)");
  }
  if (o.out.empty() && o.out_dir.empty() && o.npz.empty() && !o.json)
    fail("nothing to write: give --out, --out-dir, --npz or --json");
  io::check_outputs({{"--out", out_grid}, {"--npz", out_npz}, {"--out-dir", o.out_dir, true}});
  if (!o.out_dir.empty()) io::make_dirs(o.out_dir);

  // With --npz/--out-dir, finished chunks are kept (in NPZ.parts, else DIR.parts; a shard's in its
  // own) so that re-running this command after a kill resumes, on any number of devices; the
  // folder goes once the outputs are written.
  const io::Settings settings = resume_settings(o, *model, prepared);
  const std::string parts_dir = jobs::chunk_folder(!out_npz.empty()  ? out_npz
                                                   : shard.sharded() ? jobs::shard_path(o.out_dir, shard)
                                                                     : o.out_dir);
  const bool keep_parts = !out_npz.empty() || !o.out_dir.empty();
  std::optional<io::ChunkStore> store;
  if (keep_parts && !seeds.empty())
    store.emplace(parts_dir, settings, o.overwrite, out_npz.empty() ? "--out-dir" : "--npz");
  if (keep_parts) {  // temporaries of outputs a killed run was writing
    if (!o.out_dir.empty()) io::remove_stale_temporaries(o.out_dir, "seed");
    if (!out_npz.empty()) {
      const std::filesystem::path npz(out_npz);
      io::remove_stale_temporaries(npz.has_parent_path() ? npz.parent_path().string() : ".", npz.filename().string());
    }
  }
  auto write_pngs = [&](int64_t begin, const torch::Tensor& samples) {
    if (o.out_dir.empty()) return;
    torch::Tensor images = decoder.uint8_nhwc(samples, o.s.cond.decode_batch);
    for (int64_t i = 0; i < images.size(0); ++i)
      io::write_png(o.out_dir + "/" + seed_name(seeds[begin + i]), images[i]);
  };
  Progress progress("sampling", static_cast<int64_t>(seeds.size()), "samples");
  int64_t done = 0;
  jobs::ChunkOptions chunking;
  chunking.store = store ? &*store : nullptr;
  chunking.first_index = shard_begin;
  chunking.on_chunk = write_pngs;
  chunking.on_batch = [&](int64_t d, int64_t) {
    done = d;
    progress.update(d);
  };
  chunking.on_step = [&](int i, int n, double) {
    progress.update(done, "step " + std::to_string(i + 1) + "/" + std::to_string(n));
  };
  jobs::ChunkedResult chunked;
  if (seeds.empty()) {  // an empty shard: fewer batches than shards
    std::vector<int64_t> empty{0};
    empty.insert(empty.end(), meta.shape.begin(), meta.shape.end());
    chunked.result.samples = torch::empty(empty, torch::kFloat32);
    chunked.result.nfe = sampler->nfe_for(static_cast<int>(sigmas.size()) - 1, final);
  } else if (devices.size() > 1) {
    // One model copy per device, each on its own thread with a contiguous run of whole batches.
    std::vector<std::shared_ptr<const Model>> models{model};
    for (size_t k = 1; k < devices.size(); ++k) {
      ModelOptions copy = o.model;
      copy.device = devices[k];
      auto extra = copy.open();
      extra->configure({dtype, o.cuda_graph});
      models.push_back(extra);
    }
    chunked = jobs::run_on_devices(*sampler, models, job, chunking);
  } else {
    chunked = jobs::run_chunked(*sampler, model, job, chunking);
  }
  progress.finish();
  const SampleResult& result = chunked.result;
  const double sample_seconds = seconds_since(start);

  nlohmann::json outputs = nlohmann::json::object();
  if (!out_npz.empty()) {
    std::vector<std::pair<std::string, io::NpyArray>> arrays;
    arrays.emplace_back("samples", io::from_tensor(result.samples));
    std::vector<int64_t> seed_values(seeds.begin(), seeds.end());
    arrays.emplace_back("seeds", io::from_tensor(torch::tensor(seed_values, torch::kLong)));
    // Latent models: `samples` stay latents, `images` are decoded.
    if (decoder.image_shaped())
      arrays.emplace_back("images", io::from_tensor(decoder.uint8_nhwc(result.samples, o.s.cond.decode_batch)));
    if (job.labels.defined()) arrays.emplace_back("labels", io::from_tensor(job.labels));
    if (!job.cond_rows.empty())
      arrays.emplace_back("cond_rows", io::from_tensor(torch::tensor(job.cond_rows, torch::kLong)));
    // A shard's file says which run and which seeds it holds, for `scoreflow merge`.
    if (shard.sharded())
      arrays.emplace_back(jobs::kShardKey,
                          jobs::record_array(jobs::shard_record("samples", shard, settings, shard_begin, shard_end,
                                                                static_cast<int64_t>(all_seeds.size()))));
    io::write_npz(out_npz, arrays);
    outputs["npz"] = out_npz;
  }
  if (!out_grid.empty() && !seeds.empty()) {
    io::write_png(out_grid, io::make_grid(decoder.uint8_nhwc(result.samples, o.s.cond.decode_batch)));
    outputs["grid"] = out_grid;
  }
  if (!o.out_dir.empty()) outputs["out_dir"] = o.out_dir;  // written chunk by chunk
  if (store) store->remove();
  if (o.json) {
    torch::Tensor s = result.samples.to(torch::kFloat64);
    const bool any = s.numel() > 0;
    print_json(
        {{"command", "sample"},
         {"model", model->name()},
         {"model_summary", model->summary()},
         {"sampler", sampler->name()},
         {"sampler_args", prepared.sampler_args},
         {"trajectory", o.s.trajectory},
         {"schedule", o.s.sigmas.empty() ? o.s.schedule : "explicit"},
         {"schedule_args", o.s.schedule_args},
         {"steps", static_cast<int>(sigmas.size()) - 1},
         {"final", final_step_name(final)},
         {"nfe", result.nfe},
         {"nfe_note", o.s.nfe != -1 ? prepared.note : ""},
         {"sigmas", sigmas},
         {"seeds", o.s.seeds},
         {"num_samples", seeds.size()},
         {"shard", shard.to_json()},
         {"seed_range", {shard_begin, shard_end}},
         {"batch", o.batch},
         {"device", devices.empty() ? o.model.device : join(devices, ",")},
         {"dtype", o.dtype},
         {"cuda_graph", o.cuda_graph && model->inference_note().empty()},
         {"guidance", o.s.guidance},
         {"class", o.s.label},
         {"cond", o.s.cond.cond},
         {"cond_rows", job.cond_rows},
         {"uncond", o.s.cond.uncond},
         {"guidance_interval",
          {job.guidance_lo, std::isinf(job.guidance_hi) ? nlohmann::json("inf") : nlohmann::json(job.guidance_hi)}},
         {"guidance_rescale", job.guidance_rescale},
         {"latent", decoder.latent()},
         {"sample_mean", any ? s.mean().item<double>() : 0.0},
         {"sample_std", any ? s.std().item<double>() : 0.0},
         {"wall_seconds", seconds_since(start)},
         {"sampling_seconds", sample_seconds},
         {"resumed_samples", chunked.resumed},
         {"outputs", outputs}});
  }
}

}  // namespace

void register_sample(CLI::App& app) {
  auto* sub = app.add_subcommand("sample", "generate samples from a model with a chosen sampler");
  static SampleOptions o;
  o.model.add(*sub);
  o.s.add(*sub, SamplingFlags::kAll, "0-63");
  o.device_option = sub->get_option("--device");
  sub->add_option("--batch", o.batch, "samples per network call")->capture_default_str();
  sub->add_option("--dtype", o.dtype, "network precision fp32 | fp16 | bf16 (CUDA autocast; state stays float32)")
      ->capture_default_str();
  sub->add_flag("--cuda-graph", o.cuda_graph,
                "replay the network call from a CUDA graph (CUDA only; falls back to eager calls elsewhere)");
  sub->add_option("--out", o.out, "PNG grid of all samples");
  sub->add_option("--out-dir", o.out_dir, "directory for one PNG per seed (seedNNNNNN.png)");
  sub->add_option(
      "--npz", o.npz,
      ".npz with samples (float32; latents for latent models), seeds, images (uint8 NHWC, decoded), cond_rows");
  sub->add_flag("--json", o.json, "print a JSON summary on stdout");
  sub->add_flag("--overwrite", o.overwrite,
                "discard the finished chunks of an earlier, unfinished run instead of resuming it");
  sub->add_option("--shard", o.shard,
                  "i/n: sample only shard i of n (whole batches of the seeds; files get .shard-i-of-n; "
                  "default: RANK/WORLD_SIZE, OMPI_COMM_WORLD_*, SLURM_* when set)");
  sub->add_option("--devices", o.devices,
                  "several devices in one process, e.g. cuda:0,cuda:1 (one model copy and thread each)");
  set_action(sub, [] { run(o); });
}

}  // namespace scoreflow::cli
