// scoreflow sample: seeds → PNG grid / per-seed PNGs / .npz, with a --json summary.
#include "scoreflow/jobs/sample.h"

#include <cstdio>

#include "cli/common.h"
#include "cli/job_flags.h"
#include "cli/sampling_flags.h"
#include "scoreflow/error.h"

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

void run(const SampleOptions& o) {
  auto start = std::chrono::steady_clock::now();
  // Everything that can be refused is checked before any sampling work.
  const torch::ScalarType dtype = parse_inference_dtype(o.dtype);
  const std::vector<std::string> devices = parse_devices(o.devices);
  if (!devices.empty() && o.device_option && o.device_option->count() > 0) fail("give --device or --devices, not both");
  auto open = [&](const std::string& device) {
    ModelOptions copy = o.model;
    copy.device = device;
    std::shared_ptr<Model> model = copy.open();
    model->configure({dtype, o.cuda_graph});
    return model;
  };
  std::vector<std::shared_ptr<const Model>> models{open(devices.empty() ? o.model.device : devices[0])};
  const std::shared_ptr<const Model> model = models[0];
  if (!model->inference_note().empty()) std::fprintf(stderr, "note: %s\n", model->inference_note().c_str());
  // This process's share (--shard i/n or the launcher's variables): whole batches of the seeds.
  const jobs::Shard shard = resolve_shard_flag(o.shard);
  const PreparedJob p = o.s.build(*model, o.batch, &shard);
  const SampleJob& job = p.job;
  if (shard.sharded())
    std::fprintf(stderr, "%s (from %s): seeds %lld..%lld of %zu\n", shard.label().c_str(), shard.source.c_str(),
                 static_cast<long long>(p.begin), static_cast<long long>(p.end) - 1, p.all_seeds.size());
  if (shard.sharded() && job.seeds.empty())
    std::fprintf(
        stderr,
        "note: %s has no seeds (%zu seeds make fewer batches of %d than shards); lower --batch to spread them\n",
        shard.label().c_str(), p.all_seeds.size(), o.batch);
  if (!p.note.empty()) std::fprintf(stderr, "%s\n", p.note.c_str());
  jobs::SampleJobOptions run;
  run.outputs = {o.npz, o.out, o.out_dir, o.json};
  run.settings = {o.s.sampler_args, o.s.init_noise, o.s.label, o.dtype, o.s.cond.cond_rows};
  run.shard = shard;
  run.all_seeds = p.all_seeds;
  run.first_index = p.begin;
  run.decoder = std::make_shared<const ImageDecoder>(o.s.cond.image_decoder(model));
  run.decode_batch = o.s.cond.decode_batch;
  run.overwrite = o.overwrite;
  jobs::check_sample_outputs(run.outputs, *run.decoder, shard);
  // One model copy per device, each on its own thread with a contiguous run of whole batches.
  for (size_t k = 1; k < devices.size() && !job.seeds.empty(); ++k) models.push_back(open(devices[k]));
  Progress progress("sampling", static_cast<int64_t>(job.seeds.size()), "samples");
  int64_t done = 0;
  run.on_batch = [&](int64_t d, int64_t) { progress.update(done = d); };
  run.on_step = [&](int i, int n, double) {
    progress.update(done, "step " + std::to_string(i + 1) + "/" + std::to_string(n));
  };
  const jobs::SampleJobResult r = jobs::run_sample_job(*p.sampler, models, job, run);
  progress.finish();
  const double sample_seconds = seconds_since(start);
  if (!o.json) return;
  nlohmann::json doc = jobs::sample_report(model, *p.sampler, job, run, r);
  doc.update({{"sampler_args", p.sampler_args},
              {"trajectory", o.s.trajectory},
              {"schedule", o.s.sigmas.empty() ? o.s.schedule : "explicit"},
              {"schedule_args", o.s.schedule_args},
              {"final", final_step_name(p.final)},
              {"nfe_note", o.s.nfe != -1 ? p.note : ""},
              {"seeds", o.s.seeds},
              {"device", devices.empty() ? o.model.device : join(devices, ",")},
              {"cuda_graph", o.cuda_graph && model->inference_note().empty()},
              {"cond", o.s.cond.cond},
              {"uncond", o.s.cond.uncond},
              {"wall_seconds", seconds_since(start)},
              {"sampling_seconds", sample_seconds}});
  print_json(doc);
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
