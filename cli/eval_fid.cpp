// scoreflow eval fid: Fréchet distance (and KID, sliced W2) between samples and reference data or
// statistics, through any TorchScript feature network or none.
#include <cstdio>
#include <filesystem>

#include "cli/cond_options.h"
#include "cli/eval.h"
#include "cli/job_flags.h"
#include "io/fsutil.h"
#include "io/prefetch.h"
#include "scoreflow/amed.h"
#include "scoreflow/checkpoint.h"
#include "scoreflow/data.h"
#include "scoreflow/error.h"
#include "scoreflow/features.h"
#include "scoreflow/image.h"
#include "scoreflow/jobs.h"
#include "scoreflow/metrics.h"
#include "scoreflow/npy.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "scoreflow/sigmas.h"

namespace scoreflow::cli {
namespace {

struct Options {
  CondOptions cond;  // --model: conditioning, guidance inputs, decoder
  double guidance = 1.0;
  ModelOptions model;
  std::string features, ref, ref_data, samples, save_stats, out, data_range = "-1,1";
  std::string sampler = "heun", sampler_args, schedule = "karras", schedule_args, seeds = "0-255", final;
  std::string shard, devices;  // scoreflow/jobs.h
  CLI::Option* device_option = nullptr;
  int steps = -1, nfe = -1;
  int64_t batch = 64, limit = 0, kid_subsets = 100, kid_subset_size = 1000, projections = 256;
  bool kid = false, json = false, overwrite = false, force = false;
  bool grid_given = false;  // --schedule/--schedule-args given (else an AMED predictor's own grid is used)
};

/// The sampling grid: --steps/--nfe (default 20 steps) on --schedule, or, when no grid is given,
/// the one an AMED predictor= / table= file was trained on.
std::vector<double> grid_for(const Options& o, const Sampler& sampler, const Model& model, FinalStep final) {
  if (o.steps == -1 && o.nfe == -1 && !o.grid_given) {
    std::vector<double> trained = amed_trained_sigmas(o.sampler, o.sampler_args);
    if (!trained.empty()) return trained;
  }
  if (o.steps != -1 && o.steps < 1) fail("--steps must be >= 1, got ", o.steps);
  const int steps = o.nfe != -1 ? sampler.steps_for_nfe(o.nfe, final) : o.steps;
  return grid_sigmas(o.schedule, o.schedule_args, steps, 20, model, o.force, final);
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

/// Rows of samples in [lo, hi]: float arrays as they are (points or NCHW images), uint8 `images`
/// (NHWC, our --npz and ADM/EDM archives) scaled; anything else through io::open_dataset.
torch::Tensor load_samples(const std::string& path, double lo, double hi, int64_t limit) {
  torch::Tensor t;
  if (ends_with(path, ".npz") || ends_with(path, ".npy")) {
    std::map<std::string, io::NpyArray> arrays;
    if (ends_with(path, ".npy"))
      arrays["arr_0"] = io::read_npy(path);
    else
      arrays = io::read_npz(path);
    auto is_float = [](const io::NpyArray& a) { return a.dtype == "<f4" || a.dtype == "<f8" || a.dtype == "<f2"; };
    for (const char* key : {"samples", "arr_0", "data"}) {
      auto it = arrays.find(key);
      if (it != arrays.end() && is_float(it->second) && it->second.shape.size() != 4) {
        t = io::to_tensor(it->second).to(torch::kFloat32);  // points [N, d] (images go below)
        break;
      }
    }
    if (!t.defined()) {
      auto it = arrays.find("samples");
      if (it != arrays.end() && is_float(it->second)) t = io::to_tensor(it->second).to(torch::kFloat32);
    }
  }
  if (!t.defined()) {
    io::DatasetOptions opts;
    opts.lo = lo;
    opts.hi = hi;
    auto dataset = io::open_dataset(path, opts);
    int64_t n = limit > 0 ? std::min(limit, dataset->size()) : dataset->size();
    t = dataset->batch(0, n);
  }
  if (t.dim() < 2) fail("'", path, "': expected samples [N, ...], got shape ", t.sizes());
  if (limit > 0 && t.size(0) > limit) t = t.narrow(0, 0, limit);
  return t;
}

struct Side {
  metrics::MomentAccumulator moments;
  torch::Tensor rows;  // kept for KID / sliced W2
  // Feature extraction after the first batch (which also warms the network up): rows and seconds.
  int64_t steady_rows = 0;
  double steady_seconds = 0;
};

/// Features of x's rows, batch by batch. The rows stream to the feature network's device (the copy
/// of batch b+1 overlapping the work on b, io::RowPrefetcher), and each batch's NaN/Inf check stays
/// on the device as one flag: the host waits for the device only after the first batch (to start
/// the steady-rate clock) and once at the end, when the flags are read. A failing batch is run
/// again through the checking path, whose message names the row.
Side featurise(const eval::FeatureExtractor& fx, const torch::Tensor& x, double lo, double hi, int64_t batch, bool keep,
               int64_t first_row = 0) {
  Side side;
  if (!x.defined() || x.size(0) == 0) return side;
  io::RowPrefetcher rows(x, batch, fx.identity() ? x.device() : fx.device());
  std::vector<torch::Tensor> finite, kept;  // kept: float64 features, never views of the prefetch buffers
  auto check_batch = [&](int64_t b) {
    const int64_t begin = rows.batch_begin(b), m = rows.batch_size(b);
    fx(x.narrow(0, begin, m), lo, hi, first_row + begin);  // throws naming the row
    fail(fx.identity() ? "samples" : "feature network '" + fx.path() + "' features", " hold NaN or Inf in rows ",
         first_row + begin, "..", first_row + begin + m - 1, " (not reproduced when that batch was run again)");
  };
  std::chrono::steady_clock::time_point first_done;
  for (int64_t b = 0; b < rows.batches(); ++b) {
    torch::Tensor f = fx.extract(rows.get(b), lo, hi);
    finite.push_back(torch::isfinite(f).all());
    side.moments.add(f, /*check_finite=*/false);  // the flags below check the same rows
    if (keep) kept.push_back(f);
    if (b == 0) {
      if (!finite[0].item<bool>()) check_batch(0);
      first_done = std::chrono::steady_clock::now();
    } else {
      side.steady_rows += f.size(0);
    }
  }
  const torch::Tensor ok = torch::stack(finite).to(torch::kCPU);  // waits for every batch
  if (side.steady_rows > 0) side.steady_seconds = seconds_since(first_done);
  const auto* flags = ok.data_ptr<bool>();
  for (int64_t b = 0; b < ok.numel(); ++b)
    if (!flags[b]) check_batch(b);
  if (keep) side.rows = torch::cat(kept);
  return side;
}

/// One feature network per device of a --devices run (one, on the --device, otherwise).
struct Extractors {
  std::vector<std::unique_ptr<eval::FeatureExtractor>> on;
  const eval::FeatureExtractor& first() const { return *on.front(); }
  /// Every extractor's adaptation notes, each once.
  std::vector<std::string> notes() const {
    std::vector<std::string> all;
    for (const auto& e : on)
      for (const std::string& n : e->notes())
        if (std::find(all.begin(), all.end(), n) == all.end()) all.push_back(n);
    return all;
  }
};

Extractors open_extractors(const std::string& path, const std::vector<std::string>& devices,
                           const std::string& device) {
  Extractors fx;
  if (devices.empty()) fx.on.push_back(std::make_unique<eval::FeatureExtractor>(path, parse_device(device)));
  for (const std::string& d : devices) fx.on.push_back(std::make_unique<eval::FeatureExtractor>(path, parse_device(d)));
  return fx;
}

/// featurise over several devices, split by jobs::split_over_workers (device k takes the k-th
/// contiguous run of whole batches, as `--shard k/K` would); the moments are merged in device
/// order, which equals one pass up to rounding (MomentAccumulator::merge), and kept rows are
/// joined in row order. The steady rate is all devices' steady rows over the slowest device's time.
Side featurise(const Extractors& fx, const torch::Tensor& x, double lo, double hi, int64_t batch, bool keep,
               int64_t first_row = 0) {
  const int64_t k_devices = static_cast<int64_t>(fx.on.size());
  if (k_devices == 1 || !x.defined()) return featurise(fx.first(), x, lo, hi, batch, keep, first_row);
  std::vector<Side> parts(static_cast<size_t>(k_devices));
  jobs::split_over_workers(x.size(0), batch, k_devices, [&](int64_t k, int64_t begin, int64_t end) {
    parts[k] = featurise(*fx.on[k], x.narrow(0, begin, end - begin), lo, hi, batch, keep, first_row + begin);
  });
  Side side;
  std::vector<torch::Tensor> kept;
  for (Side& part : parts) {
    side.moments.merge(part.moments);
    if (part.rows.defined()) kept.push_back(part.rows.to(torch::kCPU));
    side.steady_rows += part.steady_rows;
    side.steady_seconds = std::max(side.steady_seconds, part.steady_seconds);
  }
  if (keep && !kept.empty()) side.rows = torch::cat(kept);
  return side;
}

/// Samples of `job` from the model, on one device or split over `models` (one per --devices
/// entry); with a store, finished batches are kept there (removed by the caller once the report
/// is written).
jobs::ChunkedResult sample_for_fid(const Sampler& sampler, const std::vector<std::shared_ptr<const Model>>& models,
                                   const SampleJob& job, io::ChunkStore* store) {
  jobs::ChunkOptions chunking;
  chunking.store = store;
  return models.size() == 1 ? jobs::run_chunked(sampler, models.front(), job, chunking)
                            : jobs::run_on_devices(sampler, models, job, chunking);
}

void need_covariance(int64_t count, const std::string& what) {
  if (count < 2)
    fail("Frechet distance needs at least 2 ", what, " to estimate a covariance (it divides by N - 1); got ", count);
}

/// --shard: feature sums of this shard's rows (whole batches) of the samples (from --model or
/// --samples), or of --ref-data when there are no samples, written for scoreflow merge.
void run_shard(const Options& o, const jobs::Shard& shard, const std::vector<std::string>& devices, double lo,
               double hi, std::chrono::steady_clock::time_point start) {
  const bool have_model = !o.model.model.empty();
  const bool samples_side = have_model || !o.samples.empty();
  if (o.save_stats.empty())
    fail("a sharded eval fid (", shard.label(), " from ", shard.source,
         "; --shard 0/1 turns it off) writes partial feature statistics: give --save-stats FILE.npz (shard files "
         "are named FILE.shard-i-of-n.npz; scoreflow merge combines them)");
  if (o.kid) fail("--kid needs every feature row in one process; it cannot be sharded");
  if (samples_side && !o.ref_data.empty())
    fail(
        "a sharded eval fid splits the samples; give the reference as --ref STATS.npz (sharded: eval fid --ref-data "
        "DATA --save-stats STATS.npz --shard i/n, then scoreflow merge)");
  const std::string path = jobs::shard_path(o.save_stats, shard);
  io::check_writable(path);
  const Extractors fx = open_extractors(o.features, devices, o.model.device);
  io::Settings settings = {{"features", o.features == "none" ? "none" : io::path_fingerprint(o.features)},
                           {"side", samples_side ? "samples" : "reference"},
                           {"data range", o.data_range},
                           {"batch", std::to_string(o.batch)}};
  torch::Tensor x;
  int64_t total = 0, begin = 0, end = 0;
  double x_lo = lo, x_hi = hi;
  if (have_model) {
    const auto models = open_on_devices(o.model, devices);
    const auto& model = models.front();
    auto sampler = make_sampler(o.sampler, o.sampler_args);
    const FinalStep final = final_step_for(o.final, *sampler, o.sampler_args);
    if (o.steps != -1 && o.nfe != -1) fail("give --steps or --nfe, not both");
    const std::vector<uint64_t> seeds = parse_seeds(o.seeds);
    total = static_cast<int64_t>(seeds.size());
    std::tie(begin, end) = jobs::shard_range(total, o.batch, shard);
    SampleJob job;
    job.sigmas = grid_for(o, *sampler, *model, final);
    job.final = final;
    const int steps = static_cast<int>(job.sigmas.size()) - 1;
    job.seeds.assign(seeds.begin() + begin, seeds.begin() + end);
    job.batch = static_cast<int>(o.batch);
    job.device = model->device();
    job.guidance = o.guidance;
    o.cond.apply(*model, job, total, begin, end);
    const ImageDecoder decoder = o.cond.image_decoder(model);
    if (!job.seeds.empty()) x = sample_for_fid(*sampler, models, job, nullptr).result.samples;
    // FD/KID see images: a latent model's samples go through its decoder.
    if (x.defined()) x = decoder.images(x, o.cond.decode_batch);
    x_lo = decoder.image_min(), x_hi = decoder.image_max();
    const io::Settings identity = jobs::model_settings(*model);
    settings.insert(settings.end(), identity.begin(), identity.end() - 1);  // not the device kind
    settings.insert(settings.end(), {{"sampler", sampler->name()},
                                     {"sampler args", o.sampler_args},
                                     {"schedule", o.schedule},
                                     {"schedule args", o.schedule_args},
                                     {"steps", std::to_string(job.sigmas.size() - 1)},
                                     {"sigmas", jobs::exact_list(job.sigmas)},
                                     {"final", final_step_name(final)},
                                     {"seeds", o.seeds}});
    if (o.guidance != 1.0 || o.cond.fingerprint() != CondOptions().fingerprint())
      settings.push_back({"conditioning", std::to_string(o.guidance) + "|" + o.cond.fingerprint()});
  } else {
    const std::string& source = samples_side ? o.samples : o.ref_data;
    x = load_samples(source, lo, hi, samples_side ? 0 : o.limit);
    total = x.size(0);
    std::tie(begin, end) = jobs::shard_range(total, o.batch, shard);
    x = x.narrow(0, begin, end - begin);
    settings.insert(settings.end(), {{"data", io::path_fingerprint(source)}, {"limit", std::to_string(o.limit)}});
  }
  std::fprintf(stderr, "%s (from %s): rows %lld..%lld of %lld\n", shard.label().c_str(), shard.source.c_str(),
               static_cast<long long>(begin), static_cast<long long>(end) - 1, static_cast<long long>(total));
  metrics::MomentAccumulator moments;
  if (x.defined() && x.size(0) > 0) moments = featurise(fx, x, x_lo, x_hi, o.batch, false, begin).moments;
  nlohmann::json record = jobs::shard_record("fid", shard, settings, begin, end, total);
  if (!o.ref.empty()) record["ref"] = {{"path", o.ref}, {"hash", io::hash_file(o.ref)}};
  const bool any = moments.count() > 0;
  auto or_empty = [&](const torch::Tensor& t) { return any ? t : torch::zeros({0}, torch::kFloat64); };
  io::write_npz(path, {{"count", io::from_tensor(torch::tensor({moments.count()}, torch::kLong))},
                       {"shift", io::from_tensor(or_empty(moments.shift()))},
                       {"sum", io::from_tensor(or_empty(moments.sum()))},
                       {"outer", io::from_tensor(or_empty(moments.outer()))},
                       {jobs::kShardKey, jobs::record_array(record)}});
  nlohmann::json doc = {{"command", "eval fid"},
                        {"shard", shard.to_json()},
                        {"rows", {begin, end}},
                        {"count", moments.count()},
                        {"notes", fx.notes()},
                        {"outputs", {{"partial_stats", path}}},
                        {"wall_seconds", seconds_since(start)}};
  if (o.json) return print_json(doc);
  std::printf("partial statistics of %lld rows written to %s\n", static_cast<long long>(moments.count()), path.c_str());
}

void run(const Options& o) {
  auto start = std::chrono::steady_clock::now();
  if (!o.ref.empty() && !o.ref_data.empty()) fail("give --ref (statistics .npz) or --ref-data (a dataset), not both");
  const bool have_model = !o.model.model.empty();
  if (have_model && !o.samples.empty()) fail("give --samples or --model, not both");
  if (o.ref.empty() && o.ref_data.empty()) fail("give the reference: --ref stats.npz or --ref-data DATASET");
  if (!have_model && o.samples.empty() && o.save_stats.empty())
    fail("nothing to compare: give --samples or --model (or --save-stats to only compute reference statistics)");
  if (o.kid && o.ref_data.empty()) fail("--kid needs the reference features: use --ref-data, not --ref statistics");
  io::check_outputs({{"--save-stats", o.save_stats}, {"--out", o.out}});
  std::vector<double> range = parse_double_list(o.data_range, "--data-range");
  if (range.size() != 2 || !(range[1] > range[0]))
    fail("--data-range must be lo,hi with hi > lo, got '", o.data_range, "'");
  double lo = range[0], hi = range[1];
  const std::vector<std::string> devices = parse_devices(o.devices);
  if (!devices.empty() && o.device_option && o.device_option->count() > 0) fail("give --device or --devices, not both");
  const jobs::Shard shard = resolve_shard_flag(o.shard);
  if (shard.sharded()) return run_shard(o, shard, devices, lo, hi, start);

  const Extractors fx = open_extractors(o.features, devices, o.model.device);
  const bool sliced = fx.first().identity();
  const bool keep = o.kid || sliced;

  // Reference side.
  torch::Tensor ref_mu, ref_sigma;
  Side ref;
  int64_t ref_count = 0;
  if (!o.ref.empty()) {
    std::tie(ref_mu, ref_sigma) = eval::load_feature_stats(o.ref);
  } else {
    ref = featurise(fx, load_samples(o.ref_data, lo, hi, o.limit), lo, hi, o.batch, keep);
    ref_count = ref.moments.count();
    need_covariance(ref_count, "reference items");
    ref_mu = ref.moments.mean();
    ref_sigma = ref.moments.covariance();
  }

  // Sample side.
  Side gen;
  nlohmann::json sampling;
  std::optional<io::ChunkStore> store;  // --out: OUT.parts, on one device or several
  double s_lo = lo, s_hi = hi;
  torch::Tensor x;
  if (have_model) {
    const auto models = open_on_devices(o.model, devices);
    const auto& model = models.front();
    auto sampler = make_sampler(o.sampler, o.sampler_args);
    const FinalStep final = final_step_for(o.final, *sampler, o.sampler_args);
    if (o.steps != -1 && o.nfe != -1) fail("give --steps or --nfe, not both");
    SampleJob job;
    job.sigmas = grid_for(o, *sampler, *model, final);
    job.final = final;
    const int steps = static_cast<int>(job.sigmas.size()) - 1;
    job.seeds = parse_seeds(o.seeds);
    job.batch = static_cast<int>(o.batch);
    job.device = model->device();
    job.guidance = o.guidance;
    o.cond.apply(*model, job, static_cast<int64_t>(job.seeds.size()), 0, static_cast<int64_t>(job.seeds.size()));
    const ImageDecoder decoder = o.cond.image_decoder(model);
    // With --out, finished batches of samples are kept in OUT.parts so that a killed run resumes.
    io::Settings settings = jobs::model_settings(*model);
    settings.insert(settings.end(), {{"sampler", sampler->name()},
                                     {"sampler args", o.sampler_args},
                                     {"sigmas", jobs::exact_list(job.sigmas)},
                                     {"final", final_step_name(final)},
                                     {"seeds", seeds_fingerprint(job.seeds)},
                                     {"batch", std::to_string(o.batch)}});
    if (o.guidance != 1.0 || o.cond.fingerprint() != CondOptions().fingerprint())
      settings.push_back({"conditioning", std::to_string(o.guidance) + "|" + o.cond.fingerprint()});
    store = chunks_for(o.out, settings, o.overwrite, "--out");
    const jobs::ChunkedResult sampled = sample_for_fid(*sampler, models, job, store ? &*store : nullptr);
    const SampleResult& result = sampled.result;
    // FD/KID see images: a latent model's samples go through its decoder.
    x = decoder.images(result.samples, o.cond.decode_batch);
    s_lo = decoder.image_min(), s_hi = decoder.image_max();
    sampling = {{"model", model->name()},
                {"sampler", sampler->name()},
                {"steps", static_cast<int>(job.sigmas.size()) - 1},
                {"final", final_step_name(final)},
                {"nfe", result.nfe},
                {"seeds", o.seeds}};
  } else if (!o.samples.empty()) {
    x = load_samples(o.samples, lo, hi, 0);
  }
  if (x.defined()) {
    gen = featurise(fx, x, s_lo, s_hi, o.batch, keep);
    need_covariance(gen.moments.count(), "samples");
  }
  const int64_t dim = gen.moments.count() ? gen.moments.dim() : ref_mu.size(0);
  if (ref_mu.size(0) != dim)
    fail("reference statistics ", o.ref.empty() ? o.ref_data : o.ref, " have dimension ", ref_mu.size(0), " but the ",
         sliced ? "samples" : "features of " + o.features, " have dimension ", dim);

  std::vector<std::string> notes = fx.notes();
  auto rank_note = [&](int64_t n, const std::string& what) {
    if (n <= dim)
      notes.push_back(what + ": " + std::to_string(n) + " rows in " + std::to_string(dim) +
                      " dimensions give a singular covariance; use more than " + std::to_string(dim) +
                      " for a stable distance");
  };
  if (ref_count) rank_note(ref_count, "reference");
  if (gen.moments.count()) rank_note(gen.moments.count(), "samples");

  nlohmann::json outputs = nlohmann::json::object();
  if (!o.save_stats.empty()) {
    if (gen.moments.count())
      eval::save_feature_stats(o.save_stats, gen.moments.mean(), gen.moments.covariance());
    else
      eval::save_feature_stats(o.save_stats, ref_mu, ref_sigma);
    outputs["stats"] = o.save_stats;
  }
  nlohmann::json doc = {{"command", "eval fid"},
                        {"features", o.features},
                        {"feature_dim", dim},
                        {"reference", o.ref.empty() ? o.ref_data : o.ref},
                        {"reference_count", ref_count},
                        {"sample_count", gen.moments.count()},
                        {"notes", notes},
                        {"outputs", outputs}};
  if (!sampling.empty()) doc["sampling"] = sampling;
  // Feature extraction of the samples after the first batch (moving them to the device, adapting,
  // the network, the moment sums): bench/feature_throughput.sh sets it against the network's own rate.
  if (gen.steady_rows > 0 && gen.steady_seconds > 0) {
    doc["feature_device"] = devices.empty() ? fx.first().device().str() : join(devices, ",");
    doc["feature_images_per_second"] = gen.steady_rows / gen.steady_seconds;
  }
  if (gen.moments.count()) {
    const double fd = metrics::frechet_distance(gen.moments.mean(), gen.moments.covariance(), ref_mu, ref_sigma);
    doc["fd"] = fd;
    if (o.kid) {
      metrics::KidOptions k;
      k.subsets = o.kid_subsets;
      k.subset_size = std::min({o.kid_subset_size, gen.rows.size(0), ref.rows.size(0)});
      auto kid = metrics::kernel_inception_distance(gen.rows, ref.rows, k);
      doc["kid"] = {{"mean", kid.mean}, {"std", kid.std}, {"subsets", k.subsets}, {"subset_size", k.subset_size}};
    }
    if (sliced && ref.rows.defined()) {
      metrics::SlicedW2Options s;
      s.projections = o.projections;
      doc["sliced_w2_squared"] = metrics::sliced_w2_squared(gen.rows, ref.rows, s);
    }
  }
  doc["wall_seconds"] = seconds_since(start);
  if (!o.out.empty()) io::write_file_atomic(o.out, doc.dump(2) + "\n");
  if (store) {
    note_resumed(&*store);
    store->remove();
  }
  if (o.json) return print_json(doc);
  for (const auto& n : notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  if (doc.contains("fd")) std::printf("%s %.6f\n", sliced ? "FD (raw samples)" : "FD", doc["fd"].get<double>());
  if (doc.contains("kid"))
    std::printf("KID %.6g +- %.2g\n", doc["kid"]["mean"].get<double>(), doc["kid"]["std"].get<double>());
  if (doc.contains("sliced_w2_squared")) std::printf("sliced W2^2 %.6g\n", doc["sliced_w2_squared"].get<double>());
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
  sub->add_option("--sampler", o.sampler, "sampler for --model")->capture_default_str();
  sub->add_option("--guidance", o.guidance, "classifier-free guidance weight w for --model")->capture_default_str();
  o.cond.add(*sub);
  sub->add_option("--sampler-args", o.sampler_args, "sampler options k=v,...");
  sub->add_option("--steps", o.steps,
                  "sampler steps (default 20, or the grid an AMED predictor= / table= was trained on)");
  sub->add_option("--nfe", o.nfe, "network-call budget instead of --steps");
  sub->add_option("--schedule", o.schedule, "sigma grid, or file:PATH.json")->capture_default_str();
  sub->add_flag("--force", o.force, kForceHelp);
  sub->add_option("--final", o.final, kFinalHelp);
  sub->add_option("--schedule-args", o.schedule_args, "grid options k=v,...");
  sub->add_option("--seeds", o.seeds, "seeds for --model")->capture_default_str();
  sub->add_option("--data-range", o.data_range, "value range lo,hi of --samples/--ref-data (uint8 is scaled into it)")
      ->capture_default_str();
  sub->add_option("--limit", o.limit, "use the first N reference items (0: all)");
  sub->add_option("--save-stats", o.save_stats,
                  "write mu/sigma of the samples (or of --ref-data when no samples) to .npz");
  sub->add_flag("--kid", o.kid, "also Kernel Inception Distance (needs --ref-data)");
  sub->add_option("--kid-subsets", o.kid_subsets, "KID subsets")->capture_default_str();
  sub->add_option("--kid-subset-size", o.kid_subset_size, "KID subset size (capped at the set sizes)")
      ->capture_default_str();
  sub->add_option("--projections", o.projections, "sliced-W2 directions (with --features none)")->capture_default_str();
  sub->add_option("--batch", o.batch, "batch size")->capture_default_str();
  sub->add_flag("--json", o.json, "print one JSON document");
  sub->add_option("--shard", o.shard,
                  "i/n: feature sums of shard i of n (whole batches of the samples, or of --ref-data) into "
                  "--save-stats' .shard-i-of-n.npz for scoreflow merge (default: RANK/WORLD_SIZE, ... when set)");
  sub->add_option("--out", o.out,
                  "write the JSON report to this file (with --model, a killed run resumes from OUT.parts)");
  sub->add_flag("--overwrite", o.overwrite, "discard the finished samples of an earlier, unfinished run");
  set_action(sub, [sub] {
    o.grid_given = sub->count("--schedule") + sub->count("--schedule-args") > 0;
    run(o);
  });
}

}  // namespace scoreflow::cli
