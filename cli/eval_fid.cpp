// scoreflow eval fid: Fréchet distance (and KID, sliced W2) between samples and reference data or
// statistics, through any TorchScript feature network or none. The job is the library's
// (jobs::fid_job, docs/design.md §1); this file reads flags, builds a --model's sampling job and prints.
#include <cstdio>
#include <memory>

#include "cli/eval.h"
#include "cli/job_flags.h"
#include "cli/sampling_flags.h"
#include "scoreflow/error.h"
#include "scoreflow/jobs/eval.h"

namespace scoreflow::cli {
namespace {

struct Options {
  SamplingFlags s;  // --model: sampler, grid, seeds, guidance, conditioning, decoder
  ModelOptions model;
  std::string shard, devices;
  CLI::Option* device_option = nullptr;
  jobs::FidJob job;
  bool json = false;
};

/// --seeds from --model on --device or each of --devices (a shard's rows of them with `shard`).
jobs::FidSampling model_samples(const Options& o, const std::vector<std::string>& devices, const jobs::Shard* shard) {
  jobs::FidSampling f;
  f.models = open_on_devices(o.model, devices);
  PreparedJob p = o.s.build(*f.models.front(), static_cast<int>(o.job.fid.batch), shard);
  f.sampler = std::move(p.sampler);
  f.final = p.final;
  f.job = std::move(p.job);
  f.total = static_cast<int64_t>(p.all_seeds.size());
  f.begin = p.begin;
  f.decoder = std::make_shared<ImageDecoder>(o.s.cond.image_decoder(f.models.front()));
  f.decode_batch = o.s.cond.decode_batch;
  f.sampler_args = o.s.sampler_args, f.schedule = o.s.schedule, f.schedule_args = o.s.schedule_args;
  f.seeds = o.s.seeds;
  if (o.s.guidance != 1.0 || o.s.cond.fingerprint() != CondOptions().fingerprint())
    f.conditioning = std::to_string(o.s.guidance) + "|" + o.s.cond.fingerprint();
  return f;
}

void run(Options o) {
  const std::vector<std::string> devices = parse_devices(o.devices);
  if (!devices.empty() && o.device_option && o.device_option->count() > 0) fail("give --device or --devices, not both");
  o.job.devices = devices;
  o.job.device = o.model.device;
  o.job.shard = resolve_shard_flag(o.shard);
  if (!o.model.model.empty())
    o.job.model_samples = [&](const jobs::Shard* shard) { return model_samples(o, devices, shard); };
  const jobs::FidJobResult r = jobs::fid_job(o.job);
  if (o.json) return print_json(r.report);
  if (o.job.shard.sharded())
    return (void)std::printf("partial statistics of %lld rows written to %s\n", static_cast<long long>(r.count),
                             r.partial_stats.c_str());
  for (const auto& n : r.metrics.notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  if (r.metrics.fd) std::printf("%s %.6f\n", r.identity ? "FD (raw samples)" : "FD", *r.metrics.fd);
  if (r.metrics.kid) std::printf("KID %.6g +- %.2g\n", r.metrics.kid->mean, r.metrics.kid->std);
  if (r.metrics.sliced_w2_squared) std::printf("sliced W2^2 %.6g\n", *r.metrics.sliced_w2_squared);
  if (!o.job.save_stats.empty()) std::printf("statistics written to %s\n", o.job.save_stats.c_str());
}

}  // namespace

void register_eval_fid(CLI::App& eval) {
  auto* sub =
      eval.add_subcommand("fid", "Frechet distance (and KID, sliced W2) of samples vs reference data or statistics");
  static Options o;
  jobs::FidJob& j = o.job;
  sub->add_option("--features", j.features, "TorchScript feature network forward(x) -> [B, D], or 'none' (raw samples)")
      ->required();
  sub->add_option("--ref", j.ref, "reference statistics .npz with mu [D] and sigma [D, D] (pytorch-fid/ADM layout)");
  sub->add_option("--ref-data", j.ref_data, "reference dataset (.npy/.npz, image folder, idx)");
  sub->add_option("--samples", j.samples_path,
                  "samples: .npz (samples float or images uint8 NHWC), .npy, image folder");
  sub->add_option("--model", o.model.model, "generate the samples from this model instead");
  sub->add_option("--meta", o.model.meta, "override a model metadata field: key=value");
  o.device_option =
      sub->add_option("--device", o.model.device, "device for --model and the feature network: cpu, cuda, cuda:N")
          ->capture_default_str();
  sub->add_option("--devices", o.devices,
                  "several devices in one process, e.g. cuda:0,cuda:1: the samples (--model) and the features are "
                  "split in whole batches, one model and feature-network copy and thread each");
  o.s.add(*sub, SamplingFlags::kConditioning | SamplingFlags::kSampler | SamplingFlags::kGrid, "0-255");
  sub->add_option("--data-range", j.data_range, "value range lo,hi of --samples/--ref-data (uint8 is scaled into it)")
      ->capture_default_str();
  sub->add_option("--limit", j.limit, "use the first N reference items (0: all)");
  sub->add_option("--save-stats", j.save_stats,
                  "write mu/sigma of the samples (or of --ref-data when no samples) to .npz");
  sub->add_flag("--kid", j.fid.kid, "also Kernel Inception Distance (needs --ref-data)");
  sub->add_option("--kid-subsets", j.fid.kid_options.subsets, "KID subsets")->capture_default_str();
  sub->add_option("--kid-subset-size", j.fid.kid_options.subset_size, "KID subset size (capped at the set sizes)")
      ->capture_default_str();
  sub->add_option("--projections", j.fid.projections, "sliced-W2 directions (with --features none)")
      ->capture_default_str();
  sub->add_option("--batch", j.fid.batch, "batch size")->capture_default_str();
  sub->add_flag("--json", o.json, "print one JSON document");
  sub->add_option("--shard", o.shard,
                  "i/n: feature sums of shard i of n (whole batches of the samples, or of --ref-data) into "
                  "--save-stats' .shard-i-of-n.npz for scoreflow merge (default: RANK/WORLD_SIZE, ... when set)");
  sub->add_option("--out", j.output.out,
                  "write the JSON report to this file (with --model, a killed run resumes from OUT.parts)");
  sub->add_flag("--overwrite", j.output.overwrite, "discard the finished samples of an earlier, unfinished run");
  j.output.out_field = "--out";
  set_action(sub, [] { run(o); });
}

}  // namespace scoreflow::cli
