// eval fid: samples from a --model (resumable, on several devices) and a shard's partial feature
// statistics (cli/eval_fid.h).
#include <cstdio>

#include "cli/cond_options.h"
#include "cli/eval.h"
#include "cli/eval_fid.h"
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

namespace scoreflow::cli::fid {

/// --seeds from --model on one device or split over --devices (a shard's rows of them with
/// `shard`); the grid is --steps/--nfe (default 20) on --schedule or, with no grid given, the one
/// an AMED predictor= / table= file was trained on. With --out (and no shard), finished batches
/// are kept in `store`, OUT.parts, so that a killed run resumes; the caller removes it.
Sampled sample_images(const Options& o, const std::vector<std::string>& devices, const jobs::Shard* shard,
                      std::optional<io::ChunkStore>& store) {
  const auto models = open_on_devices(o.model, devices);
  const auto& model = models.front();
  const PreparedJob p = o.s.build(*model, static_cast<int>(o.fid.batch), shard);
  const Sampler& sampler = *p.sampler;
  const FinalStep final = p.final;
  const SampleJob& job = p.job;
  Sampled s;
  s.total = static_cast<int64_t>(p.all_seeds.size());
  s.begin = p.begin, s.end = p.end;
  const ImageDecoder decoder = o.s.cond.image_decoder(model);
  s.lo = decoder.image_min(), s.hi = decoder.image_max();
  const std::string steps = std::to_string(job.sigmas.size() - 1), sigmas = jobs::exact_list(job.sigmas);
  io::Settings settings = jobs::model_settings(*model), conditioning;
  if (o.s.guidance != 1.0 || o.s.cond.fingerprint() != CondOptions().fingerprint())
    conditioning.push_back({"conditioning", std::to_string(o.s.guidance) + "|" + o.s.cond.fingerprint()});
  if (shard) {
    settings.pop_back();  // not the device kind
    settings.insert(settings.end(), {{"sampler", sampler.name()},
                                     {"sampler args", o.s.sampler_args},
                                     {"schedule", o.s.schedule},
                                     {"schedule args", o.s.schedule_args},
                                     {"steps", steps},
                                     {"sigmas", sigmas},
                                     {"final", final_step_name(final)},
                                     {"seeds", o.s.seeds}});
    settings.insert(settings.end(), conditioning.begin(), conditioning.end());
    s.record = settings;
  } else {
    settings.insert(settings.end(), {{"sampler", sampler.name()},
                                     {"sampler args", o.s.sampler_args},
                                     {"sigmas", sigmas},
                                     {"final", final_step_name(final)},
                                     {"seeds", seeds_fingerprint(job.seeds)},
                                     {"batch", std::to_string(o.fid.batch)}});
    settings.insert(settings.end(), conditioning.begin(), conditioning.end());
    store = chunks_for(o.out, settings, o.overwrite, "--out");
  }
  if (job.seeds.empty()) return s;
  jobs::ChunkOptions chunking;
  chunking.store = store ? &*store : nullptr;
  const jobs::ChunkedResult sampled = models.size() == 1 ? jobs::run_chunked(sampler, model, job, chunking)
                                                         : jobs::run_on_devices(sampler, models, job, chunking);
  s.images = decoder.images(sampled.result.samples, o.s.cond.decode_batch);
  s.sampling = {{"model", model->name()},
                {"sampler", sampler.name()},
                {"steps", static_cast<int>(job.sigmas.size()) - 1},
                {"final", final_step_name(final)},
                {"nfe", sampled.result.nfe},
                {"seeds", o.s.seeds}};
  return s;
}

/// The feature network on each of --devices, or on --device.
jobs::FeatureNetworks feature_networks(const Options& o, const std::vector<std::string>& devices) {
  std::vector<torch::Device> on;
  for (const std::string& d : devices.empty() ? std::vector<std::string>{o.model.device} : devices)
    on.push_back(parse_device(d));
  return jobs::FeatureNetworks(o.features, on);
}

/// --shard: feature sums of this shard's rows (whole batches) of the samples (from --model or
/// --samples), or of --ref-data when there are no samples, written for scoreflow merge.
void run_shard(const Options& o, const jobs::Shard& shard, const std::vector<std::string>& devices, double lo,
               double hi, std::chrono::steady_clock::time_point start) {
  const bool samples_side = !o.model.model.empty() || !o.samples.empty();
  if (o.save_stats.empty())
    fail("a sharded eval fid (", shard.label(), " from ", shard.source,
         "; --shard 0/1 turns it off) writes partial feature statistics: give --save-stats FILE.npz (shard files "
         "are named FILE.shard-i-of-n.npz; scoreflow merge combines them)");
  if (o.fid.kid) fail("--kid needs every feature row in one process; it cannot be sharded");
  if (samples_side && !o.ref_data.empty())
    fail(
        "a sharded eval fid splits the samples; give the reference as --ref STATS.npz (sharded: eval fid --ref-data "
        "DATA --save-stats STATS.npz --shard i/n, then scoreflow merge)");
  const std::string path = jobs::shard_path(o.save_stats, shard);
  io::check_writable(path);
  const jobs::FeatureNetworks fx = feature_networks(o, devices);
  io::Settings settings = {{"features", o.features == "none" ? "none" : io::path_fingerprint(o.features)},
                           {"side", samples_side ? "samples" : "reference"},
                           {"data range", o.data_range},
                           {"batch", std::to_string(o.fid.batch)}};
  Sampled x;
  if (!o.model.model.empty()) {
    std::optional<io::ChunkStore> no_store;
    x = sample_images(o, devices, &shard, no_store);
    settings.insert(settings.end(), x.record.begin(), x.record.end());
  } else {
    const std::string& source = samples_side ? o.samples : o.ref_data;
    x.images = io::load_sample_rows(source, lo, hi, samples_side ? 0 : o.limit);
    x.lo = lo, x.hi = hi, x.total = x.images.size(0);
    std::tie(x.begin, x.end) = jobs::shard_range(x.total, o.fid.batch, shard);
    x.images = x.images.narrow(0, x.begin, x.end - x.begin);
    settings.insert(settings.end(), {{"data", io::path_fingerprint(source)}, {"limit", std::to_string(o.limit)}});
  }
  std::fprintf(stderr, "%s (from %s): rows %lld..%lld of %lld\n", shard.label().c_str(), shard.source.c_str(),
               static_cast<long long>(x.begin), static_cast<long long>(x.end) - 1, static_cast<long long>(x.total));
  metrics::MomentAccumulator moments;
  if (x.images.defined() && x.images.size(0) > 0)
    moments = jobs::extract_features(fx, x.images, x.lo, x.hi, o.fid.batch, false, x.begin).moments;
  nlohmann::json record = jobs::shard_record("fid", shard, settings, x.begin, x.end, x.total);
  if (!o.ref.empty()) record["ref"] = {{"path", o.ref}, {"hash", io::hash_file(o.ref)}};
  jobs::write_fid_shard(path, moments, record);
  nlohmann::json doc = {{"command", "eval fid"},
                        {"shard", shard.to_json()},
                        {"rows", {x.begin, x.end}},
                        {"count", moments.count()},
                        {"notes", fx.notes()},
                        {"outputs", {{"partial_stats", path}}},
                        {"wall_seconds", seconds_since(start)}};
  if (o.json) return print_json(doc);
  std::printf("partial statistics of %lld rows written to %s\n", static_cast<long long>(moments.count()), path.c_str());
}

}  // namespace scoreflow::cli::fid
