// scoreflow eval fid: Fréchet distance (and KID, sliced W2) between samples and reference data or
// statistics, through any TorchScript feature network or none. The pipeline is the library's
// (scoreflow/fid.h, docs/design.md §1); this file reads flags, samples a --model and prints.
#include "cli/eval_fid.h"

#include <cstdio>

#include "cli/cond_options.h"
#include "cli/eval.h"
#include "cli/job_flags.h"
#include "cli/sampling_flags.h"
#include "io/fsutil.h"
#include "scoreflow/amed.h"
#include "scoreflow/error.h"
#include "scoreflow/fid.h"
#include "scoreflow/jobs.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "scoreflow/sample_files.h"
#include "scoreflow/sigmas.h"

namespace scoreflow::cli {
using namespace fid;
namespace {

void run(const Options& o) {
  auto start = std::chrono::steady_clock::now();
  if (!o.ref.empty() && !o.ref_data.empty()) fail("give --ref (statistics .npz) or --ref-data (a dataset), not both");
  const bool have_model = !o.model.model.empty();
  if (have_model && !o.samples.empty()) fail("give --samples or --model, not both");
  if (o.ref.empty() && o.ref_data.empty()) fail("give the reference: --ref stats.npz or --ref-data DATASET");
  if (!have_model && o.samples.empty() && o.save_stats.empty())
    fail("nothing to compare: give --samples or --model (or --save-stats to only compute reference statistics)");
  if (o.fid.kid && o.ref_data.empty()) fail("--kid needs the reference features: use --ref-data, not --ref statistics");
  io::check_outputs({{"--save-stats", o.save_stats}, {"--out", o.out}});
  std::vector<double> range = parse_double_list(o.data_range, "--data-range");
  if (range.size() != 2 || !(range[1] > range[0]))
    fail("--data-range must be lo,hi with hi > lo, got '", o.data_range, "'");
  const double lo = range[0], hi = range[1];
  const std::vector<std::string> devices = parse_devices(o.devices);
  if (!devices.empty() && o.device_option && o.device_option->count() > 0) fail("give --device or --devices, not both");
  const jobs::Shard shard = resolve_shard_flag(o.shard);
  if (shard.sharded()) return run_shard(o, shard, devices, lo, hi, start);
  const jobs::FeatureNetworks fx = feature_networks(o, devices);
  const jobs::FidReference ref =
      o.ref.empty() ? jobs::fid_reference_from_rows(fx, io::load_sample_rows(o.ref_data, lo, hi, o.limit), lo, hi,
                                                    o.ref_data, o.fid)
                    : jobs::fid_reference_from_stats(o.ref);
  std::optional<io::ChunkStore> store;  // --out: OUT.parts, on one device or several
  Sampled x;
  x.lo = lo, x.hi = hi;
  if (have_model) x = sample_images(o, devices, nullptr, store);
  if (!o.samples.empty()) x.images = io::load_sample_rows(o.samples, lo, hi, 0);
  const jobs::FidReport report = jobs::fid_report(fx, ref, x.images, x.lo, x.hi, o.fid);
  nlohmann::json doc = report.to_json(), outputs = nlohmann::json::object();
  if (!o.save_stats.empty()) {
    eval::save_feature_stats(o.save_stats, report.mu, report.sigma);
    outputs["stats"] = o.save_stats;
  }
  doc["command"] = "eval fid";
  doc["outputs"] = outputs;
  if (!x.sampling.empty()) doc["sampling"] = x.sampling;
  // bench/feature_throughput.sh sets the samples' feature rate against the network's own.
  if (doc.contains("feature_images_per_second"))
    doc["feature_device"] = devices.empty() ? fx.first().device().str() : join(devices, ",");
  doc["wall_seconds"] = seconds_since(start);
  if (!o.out.empty()) io::write_file_atomic(o.out, doc.dump(2) + "\n");
  if (store) {
    note_resumed(&*store);
    store->remove();
  }
  if (o.json) return print_json(doc);
  for (const auto& n : report.notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  if (report.fd) std::printf("%s %.6f\n", fx.identity() ? "FD (raw samples)" : "FD", *report.fd);
  if (report.kid) std::printf("KID %.6g +- %.2g\n", report.kid->mean, report.kid->std);
  if (report.sliced_w2_squared) std::printf("sliced W2^2 %.6g\n", *report.sliced_w2_squared);
  if (!o.save_stats.empty()) std::printf("statistics written to %s\n", o.save_stats.c_str());
}

}  // namespace

void register_eval_fid(CLI::App& eval) {
  auto* sub =
      eval.add_subcommand("fid", "Frechet distance (and KID, sliced W2) of samples vs reference data or statistics");
  static Options o;
  sub->add_option("--features", o.features, "TorchScript feature network forward(x) -> [B, D], or 'none' (raw samples)")
      ->required();
  sub->add_option("--ref", o.ref, "reference statistics .npz with mu [D] and sigma [D, D] (pytorch-fid/ADM layout)");
  sub->add_option("--ref-data", o.ref_data, "reference dataset (.npy/.npz, image folder, idx)");
  sub->add_option("--samples", o.samples, "samples: .npz (samples float or images uint8 NHWC), .npy, image folder");
  sub->add_option("--model", o.model.model, "generate the samples from this model instead");
  sub->add_option("--meta", o.model.meta, "override a model metadata field: key=value");
  o.device_option =
      sub->add_option("--device", o.model.device, "device for --model and the feature network: cpu, cuda, cuda:N")
          ->capture_default_str();
  sub->add_option("--devices", o.devices,
                  "several devices in one process, e.g. cuda:0,cuda:1: the samples (--model) and the features are "
                  "split in whole batches, one model and feature-network copy and thread each");
  o.s.add(*sub, SamplingFlags::kConditioning | SamplingFlags::kSampler | SamplingFlags::kGrid, "0-255");
  sub->add_option("--data-range", o.data_range, "value range lo,hi of --samples/--ref-data (uint8 is scaled into it)")
      ->capture_default_str();
  sub->add_option("--limit", o.limit, "use the first N reference items (0: all)");
  sub->add_option("--save-stats", o.save_stats,
                  "write mu/sigma of the samples (or of --ref-data when no samples) to .npz");
  sub->add_flag("--kid", o.fid.kid, "also Kernel Inception Distance (needs --ref-data)");
  sub->add_option("--kid-subsets", o.fid.kid_options.subsets, "KID subsets")->capture_default_str();
  sub->add_option("--kid-subset-size", o.fid.kid_options.subset_size, "KID subset size (capped at the set sizes)")
      ->capture_default_str();
  sub->add_option("--projections", o.fid.projections, "sliced-W2 directions (with --features none)")
      ->capture_default_str();
  sub->add_option("--batch", o.fid.batch, "batch size")->capture_default_str();
  sub->add_flag("--json", o.json, "print one JSON document");
  sub->add_option("--shard", o.shard,
                  "i/n: feature sums of shard i of n (whole batches of the samples, or of --ref-data) into "
                  "--save-stats' .shard-i-of-n.npz for scoreflow merge (default: RANK/WORLD_SIZE, ... when set)");
  sub->add_option("--out", o.out,
                  "write the JSON report to this file (with --model, a killed run resumes from OUT.parts)");
  sub->add_flag("--overwrite", o.overwrite, "discard the finished samples of an earlier, unfinished run");
  set_action(sub, [] { run(o); });
}

}  // namespace scoreflow::cli
