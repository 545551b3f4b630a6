// eval fid as a job (scoreflow/jobs/eval.h): reference, samples (read, or sampled from a model and
// resumable), features on one device or several, the report, and a shard's partial statistics.
#include <chrono>
#include <cstdio>
#include <optional>

#include "io/fsutil.h"
#include "scoreflow/args.h"
#include "scoreflow/device.h"
#include "scoreflow/error.h"
#include "scoreflow/fid.h"
#include "scoreflow/jobs/clock.h"
#include "scoreflow/jobs/eval.h"
#include "scoreflow/sample_files.h"

namespace scoreflow::jobs {
namespace {

/// Image rows and what identifies them.
struct Rows {
  torch::Tensor images;  // undefined for a shard with no seeds
  double lo = -1, hi = 1;
  int64_t total = 0, begin = 0, end = 0;  // [begin, end) of total
  io::Settings record;                    // a shard's record of the samples
  nlohmann::json sampling;
};

/// The samples of job.model_samples; without a shard and with an output, finished batches are
/// kept in `store` so that a killed run resumes (the caller removes it).
Rows sample_images(const FidJob& fid, const Shard* shard, std::optional<io::ChunkStore>& store) {
  const FidSampling p = fid.model_samples(shard);
  if (p.models.empty() || !p.sampler || !p.decoder) fail("internal: model_samples gave no model, sampler or decoder");
  const auto& model = p.models.front();
  const SampleJob& job = p.job;
  const Sampler& sampler = *p.sampler;
  Rows s;
  s.total = p.total;
  s.begin = p.begin, s.end = p.begin + static_cast<int64_t>(job.seeds.size());
  s.lo = p.decoder->image_min(), s.hi = p.decoder->image_max();
  const std::string steps = std::to_string(job.sigmas.size() - 1), sigmas = exact_list(job.sigmas);
  io::Settings settings = model_settings(*model), conditioning;
  if (!p.conditioning.empty()) conditioning.push_back({"conditioning", p.conditioning});
  if (shard) {
    settings.pop_back();  // not the device kind
    settings.insert(settings.end(), {{"sampler", sampler.name()},
                                     {"sampler args", p.sampler_args},
                                     {"schedule", p.schedule},
                                     {"schedule args", p.schedule_args},
                                     {"steps", steps},
                                     {"sigmas", sigmas},
                                     {"final", final_step_name(p.final)},
                                     {"seeds", p.seeds}});
    settings.insert(settings.end(), conditioning.begin(), conditioning.end());
    s.record = settings;
  } else {
    settings.insert(settings.end(), {{"sampler", sampler.name()},
                                     {"sampler args", p.sampler_args},
                                     {"sigmas", sigmas},
                                     {"final", final_step_name(p.final)},
                                     {"seeds", seeds_fingerprint(job.seeds)},
                                     {"batch", std::to_string(fid.fid.batch)}});
    settings.insert(settings.end(), conditioning.begin(), conditioning.end());
    if (!fid.output.out.empty())
      store.emplace(chunk_folder(fid.output.out), settings, fid.output.overwrite, fid.output.out_field);
  }
  if (job.seeds.empty()) return s;
  ChunkOptions chunking;
  chunking.store = store ? &*store : nullptr;
  const ChunkedResult sampled = p.models.size() == 1 ? run_chunked(sampler, model, job, chunking)
                                                     : run_on_devices(sampler, p.models, job, chunking);
  s.images = p.decoder->images(sampled.result.samples, p.decode_batch);
  s.sampling = {{"model", model->name()},
                {"sampler", sampler.name()},
                {"steps", static_cast<int>(job.sigmas.size()) - 1},
                {"final", final_step_name(p.final)},
                {"nfe", sampled.result.nfe},
                {"seeds", p.seeds}};
  return s;
}

FeatureNetworks feature_networks(const FidJob& job) {
  std::vector<torch::Device> on;
  for (const std::string& d : job.devices.empty() ? std::vector<std::string>{job.device} : job.devices)
    on.push_back(parse_device(d));
  return FeatureNetworks(job.features, on);
}

/// A shard's feature sums of its rows (whole batches) of the samples, or of ref_data without
/// samples, written for merge_shards.
FidJobResult run_shard(const FidJob& job, double lo, double hi, std::chrono::steady_clock::time_point start) {
  const Shard& shard = job.shard;
  const bool have_model = static_cast<bool>(job.model_samples);
  const bool samples_side = have_model || !job.samples_path.empty();
  if (job.save_stats.empty())
    fail("a sharded eval fid (", shard.label(), " from ", shard.source, "; ", Field{"shard"},
         " 0/1 turns it off) writes partial feature statistics: give ", Field{"save_stats"},
         " FILE.npz (shard files are named FILE.shard-i-of-n.npz; scoreflow merge combines them)");
  if (job.fid.kid) fail(Field{"kid"}, " needs every feature row in one process; it cannot be sharded");
  if (samples_side && !job.ref_data.empty())
    fail("a sharded eval fid splits the samples; give the reference as ", Field{"ref"},
         " STATS.npz (sharded: eval fid ", Field{"ref_data"}, " DATA ", Field{"save_stats"}, " STATS.npz ",
         Field{"shard"}, " i/n, then scoreflow merge)");
  const std::string path = shard_path(job.save_stats, shard);
  io::check_writable(path);
  const FeatureNetworks fx = feature_networks(job);
  io::Settings settings = {{"features", job.features == "none" ? "none" : io::path_fingerprint(job.features)},
                           {"side", samples_side ? "samples" : "reference"},
                           {"data range", job.data_range},
                           {"batch", std::to_string(job.fid.batch)}};
  Rows x;
  if (have_model) {
    std::optional<io::ChunkStore> no_store;
    x = sample_images(job, &shard, no_store);
    settings.insert(settings.end(), x.record.begin(), x.record.end());
  } else {
    const std::string& source = samples_side ? job.samples_path : job.ref_data;
    x.images = io::load_sample_rows(source, lo, hi, samples_side ? 0 : job.limit);
    x.lo = lo, x.hi = hi, x.total = x.images.size(0);
    std::tie(x.begin, x.end) = shard_range(x.total, job.fid.batch, shard);
    x.images = x.images.narrow(0, x.begin, x.end - x.begin);
    settings.insert(settings.end(), {{"data", io::path_fingerprint(source)}, {"limit", std::to_string(job.limit)}});
  }
  std::fprintf(stderr, "%s (from %s): rows %lld..%lld of %lld\n", shard.label().c_str(), shard.source.c_str(),
               static_cast<long long>(x.begin), static_cast<long long>(x.end) - 1, static_cast<long long>(x.total));
  eval::MomentAccumulator moments;
  if (x.images.defined() && x.images.size(0) > 0)
    moments = extract_features(fx, x.images, x.lo, x.hi, job.fid.batch, false, x.begin).moments;
  nlohmann::json record = shard_record("fid", shard, settings, x.begin, x.end, x.total);
  if (!job.ref.empty()) record["ref"] = {{"path", job.ref}, {"hash", io::hash_file(job.ref)}};
  write_fid_shard(path, moments, record);
  FidJobResult r;
  r.identity = fx.identity();
  r.partial_stats = path;
  r.count = moments.count();
  r.report = {{"command", "eval fid"},
              {"shard", shard.to_json()},
              {"rows", {x.begin, x.end}},
              {"count", moments.count()},
              {"notes", fx.notes()},
              {"outputs", {{"partial_stats", path}}},
              {"wall_seconds", seconds_since(start)}};
  return r;
}

}  // namespace

FidJobResult fid_job(const FidJob& job) {
  const auto start = std::chrono::steady_clock::now();
  const bool have_model = static_cast<bool>(job.model_samples);
  if (job.features.empty()) fail(Field{"features"}, " is empty: give a feature network or 'none'");
  if (!job.ref.empty() && !job.ref_data.empty())
    fail("give ", Field{"ref"}, " (statistics .npz) or ", Field{"ref_data"}, " (a dataset), not both");
  if (have_model && !job.samples_path.empty())
    fail("give ", Field{"samples_path"}, " or ", Field{"model_samples"}, ", not both");
  if (job.ref.empty() && job.ref_data.empty())
    fail("give the reference: ", Field{"ref"}, " stats.npz or ", Field{"ref_data"}, " DATASET");
  if (!have_model && job.samples_path.empty() && job.save_stats.empty())
    fail("nothing to compare: give ", Field{"samples_path"}, " or ", Field{"model_samples"}, " (or ",
         Field{"save_stats"}, " to only compute reference statistics)");
  if (job.fid.kid && job.ref_data.empty())
    fail(Field{"kid"}, " needs the reference features: use ", Field{"ref_data"}, ", not ", Field{"ref"}, " statistics");
  io::check_outputs({{"save_stats", job.save_stats}, {job.output.out_field, job.output.out}});
  std::vector<double> range;
  try {
    range = parse_double_list(job.data_range, "");
  } catch (const Error& e) {
    fail(Field{"data_range"}, e.what());
  }
  if (range.size() != 2 || !(range[1] > range[0]))
    fail(Field{"data_range"}, " must be lo,hi with hi > lo, got '", job.data_range, "'");
  const double lo = range[0], hi = range[1];
  if (job.shard.sharded()) return run_shard(job, lo, hi, start);
  const auto fx = std::make_shared<const FeatureNetworks>(feature_networks(job));
  FidReference ref = job.ref.empty()
                         ? fid_reference_from_rows(*fx, io::load_sample_rows(job.ref_data, lo, hi, job.limit), lo, hi,
                                                   job.ref_data, job.fid)
                         : fid_reference_from_stats(job.ref);
  std::optional<io::ChunkStore> store;  // output.out: its chunk folder, on one device or several
  Rows x;
  x.lo = lo, x.hi = hi;
  if (have_model) x = sample_images(job, nullptr, store);
  if (!job.samples_path.empty()) x.images = io::load_sample_rows(job.samples_path, lo, hi, 0);
  FidJobResult r;
  r.identity = fx->identity();
  // The metric compare's fd is, fed by stream_on_workers over the feature devices.
  const eval::FdMetric fd(fx, std::move(ref), job.fid, x.lo, x.hi);
  r.metrics = fid_report(fd, x.images);
  nlohmann::json doc = r.metrics.to_json(), outputs = nlohmann::json::object();
  if (!job.save_stats.empty()) {
    eval::save_feature_stats(job.save_stats, r.metrics.mu, r.metrics.sigma);
    outputs["stats"] = job.save_stats;
  }
  doc["command"] = "eval fid";
  doc["outputs"] = outputs;
  if (!x.sampling.empty()) doc["sampling"] = x.sampling;
  // bench/feature_throughput.sh sets the samples' feature rate against the network's own.
  if (doc.contains("feature_images_per_second"))
    doc["feature_device"] = job.devices.empty() ? fx->first().device().str() : join(job.devices, ",");
  doc["wall_seconds"] = seconds_since(start);
  if (!job.output.out.empty()) io::write_file_atomic(job.output.out, doc.dump(2) + "\n");
  if (store) {
    note_resumed(store->dir(), store->loaded(), "chunks");
    store->remove();
  }
  r.report = doc;
  return r;
}

}  // namespace scoreflow::jobs
