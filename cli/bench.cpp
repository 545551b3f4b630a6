// scoreflow bench: milliseconds per network call for the network alone, the network replayed from
// a CUDA graph, and a full sampler run — measured side by side in one process, so the sampler's
// overhead (everything that is not the network) is a ratio of two numbers taken together.
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "cli/common.h"
#include "cli/cond_options.h"
#include "cli/cpu_path.h"
#include "cli/list_arg.h"
#include "cli/sampling_flags.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"
#include "scoreflow/sigmas.h"

namespace scoreflow::cli {
namespace {

struct BenchOptions {
  ModelOptions model;
  SamplingFlags s;  // conditioning (--cond, --guidance, ...) for the sampled batch; --schedule, --final, --force
  std::string sampler = "dpmpp_2m", sampler_args, dtype = "fp32", batches = "64";
  int nfe = 10, repeat = 5, iterations = 50;
  bool cuda_graph = false, json = false;
  int optimize_max_batch = LoadOptions::kTimedChoice;
};

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

/// Median of `repeat` timings of fn(), in seconds, after one untimed warm-up call.
template <typename Fn>
double median_seconds(const torch::Device& device, int repeat, Fn fn) {
  fn();
  sync(device);
  std::vector<double> times;
  for (int r = 0; r < repeat; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    sync(device);
    times.push_back(seconds_since(t0));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct Case {
  std::unique_ptr<Sampler> sampler;
  std::string args;
  int batch;
  FinalStep final;
};

void run_case(const BenchOptions& o, const std::shared_ptr<Model>& model, torch::ScalarType dtype, const Case& c);

void run(const BenchOptions& o) {
  if (o.repeat < 1) fail("--repeat must be >= 1, got ", o.repeat);
  if (o.iterations < 1) fail("--iterations must be >= 1, got ", o.iterations);
  if (o.optimize_max_batch < LoadOptions::kTimedChoice)
    fail("--optimize-max-batch must be >= 0 (or -1: timed at load), got ", o.optimize_max_batch);
  cli_load_options().optimize_max_batch = o.optimize_max_batch;
  const torch::ScalarType dtype = parse_inference_dtype(o.dtype);
  // Everything is checked before the first (slow) measurement.
  std::vector<int> batches;
  for (const std::string& b : split_commas(o.batches)) {
    int v = 0;
    try {
      size_t pos = 0;
      v = std::stoi(b, &pos);
      if (pos != b.size()) v = 0;
    } catch (const std::exception&) {
    }
    if (v < 1) fail("--batch must be a list of integers >= 1, got '", o.batches, "'");
    batches.push_back(v);
  }
  if (batches.empty()) fail("--batch must be a list of integers >= 1, got '", o.batches, "'");
  auto model = o.model.open();
  model->configure({dtype, false});
  if (const std::string cpu = cpu_path_text(*model); !cpu.empty()) std::fprintf(stderr, "cpu path: %s\n", cpu.c_str());
  std::vector<Case> cases;
  for (const std::string& name : split_commas(o.sampler)) {
    for (int b : batches) {
      Case c{make_sampler(name, o.sampler_args), o.sampler_args, b, FinalStep::Zero};
      c.final = final_step_for(o.s.final, *c.sampler, o.sampler_args);
      c.sampler->steps_for_nfe(o.nfe, c.final);  // refuses an NFE too small for the method
      cases.push_back(std::move(c));
    }
  }
  if (cases.empty()) fail("--sampler names no sampler");
  for (const Case& c : cases) {  // conditioning is checked for every batch size before any timing
    SampleJob job;
    job.seeds.resize(static_cast<size_t>(c.batch));
    job.guidance = o.s.guidance;
    o.s.cond.apply(*model, job, c.batch, 0, c.batch);
  }
  for (const Case& c : cases) run_case(o, model, dtype, c);
}

void run_case(const BenchOptions& o, const std::shared_ptr<Model>& model, torch::ScalarType dtype, const Case& c) {
  const ModelMetadata& meta = model->metadata();
  const torch::Device device = model->device();
  const Sampler* sampler = c.sampler.get();
  const int batch = c.batch;
  const int steps = sampler->steps_for_nfe(o.nfe, c.final);
  const int64_t nfe = sampler->nfe_for(steps, c.final);
  const std::vector<double> sigmas =
      grid_sigmas(o.s.schedule, o.s.schedule_args, steps, steps, *model, o.s.force, c.final);
  std::vector<uint64_t> seeds(batch);
  for (int i = 0; i < batch; ++i) seeds[i] = static_cast<uint64_t>(i);
  const torch::Tensor x0 = (NoiseSource(seeds).randn(meta.shape) * sigmas.front()).to(device);
  const double sigma_mid = sigmas[sigmas.size() / 2];
  SampleJob job;  // the conditioning of seeds 0..batch-1 (guidance doubles the network batch)
  job.seeds = seeds;
  job.guidance = o.s.guidance;
  o.s.cond.apply(*model, job, batch, 0, batch);
  const Conditioning conditioning = batch_conditioning(job, 0, batch, device);
  torch::NoGradGuard no_grad;

  auto configure = [&](bool graph) { model->configure({dtype, graph}); };
  auto sample_once = [&]() {
    NoiseSource noise(seeds);
    Denoiser denoiser(model, conditioning);
    torch::Tensor x = sampler->sample(denoiser, x0.clone(), sigmas, noise);
    if (c.final == FinalStep::Denoise) x = denoiser(x, sigmas.back());
    denoiser.check_finite();
    return x;
  };
  const double calls = static_cast<double>(nfe);

  // 1. The network alone, eagerly; 2. the full sampler, eagerly.
  configure(false);
  const double net =
      median_seconds(device, o.repeat, [&] { model->network_only(x0, sigma_mid, o.iterations, false); }) / o.iterations;
  const double smp = median_seconds(device, o.repeat, [&] { sample_once(); }) / calls;
  // 3. and 4.: the same from a CUDA graph, when asked for and possible.
  double net_graph = NAN, smp_graph = NAN;
  std::string note;
  if (o.cuda_graph) {
    configure(true);
    sample_once();  // captures
    note = model->inference_note();
    if (note.empty()) {
      net_graph = median_seconds(device, o.repeat, [&] { model->network_only(x0, sigma_mid, o.iterations, true); }) /
                  o.iterations;
      smp_graph = median_seconds(device, o.repeat, [&] { sample_once(); }) / calls;
    } else {
      std::fprintf(stderr, "note: %s\n", note.c_str());
    }
  }
  // Quality cost of reduced precision: the same sampler run in fp32 and in --dtype, same noise.
  double rms_vs_fp32 = NAN;
  if (dtype != torch::kFloat32) {
    model->configure({torch::kFloat32, false});
    torch::Tensor ref = sample_once().to(torch::kFloat64);
    model->configure({dtype, false});
    torch::Tensor low = sample_once().to(torch::kFloat64);
    rms_vs_fp32 = (low - ref).pow(2).mean().sqrt().item<double>() / std::max(ref.std().item<double>(), 1e-12);
  }

  auto ms = [](double s) { return std::isnan(s) ? NAN : s * 1e3; };
  const double overhead = smp / net - 1, overhead_graph = smp_graph / net_graph - 1;
  std::fprintf(stderr, "%s on %s, batch %d, %s, %lld NFE (%d steps), dtype %s\n", sampler->name().c_str(),
               device.str().c_str(), batch, model->name().c_str(), static_cast<long long>(nfe), steps, o.dtype.c_str());
  std::fprintf(stderr, "  network alone            %9.4f ms/call\n", ms(net));
  std::fprintf(stderr, "  sampler                  %9.4f ms/call  (overhead %+.2f%%)\n", ms(smp), 100 * overhead);
  if (!std::isnan(net_graph)) {
    std::fprintf(stderr, "  network from CUDA graph  %9.4f ms/call\n", ms(net_graph));
    std::fprintf(stderr, "  sampler, CUDA graph      %9.4f ms/call  (overhead %+.2f%% vs graph replay)\n",
                 ms(smp_graph), 100 * overhead_graph);
  }
  if (!std::isnan(rms_vs_fp32))
    std::fprintf(stderr, "  %s vs fp32: RMS sample difference %.3g (relative to the samples' std)\n", o.dtype.c_str(),
                 rms_vs_fp32);
  if (o.json) {
    auto num = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
    nlohmann::json line = {
        {"command", "bench"},
        {"model", model->name()},
        {"sampler", sampler->name()},
        {"sampler_args", o.sampler_args},
        {"device", device.str()},
        {"batch", batch},
        {"nfe", nfe},
        {"steps", steps},
        {"final", final_step_name(c.final)},
        {"dtype", o.dtype},
        {"cuda_graph_requested", o.cuda_graph},
        {"cuda_graph_note", note},
        {"cpu_optimized", cpu_optimization(*model).active && batch <= cpu_optimization(*model).max_batch},
        {"network_ms", ms(net)},
        {"sampler_ms_per_call", ms(smp)},
        {"sampler_overhead", overhead},
        {"network_graph_ms", num(ms(net_graph))},
        {"sampler_graph_ms_per_call", num(ms(smp_graph))},
        {"sampler_graph_overhead", num(overhead_graph)},
        {"rms_vs_fp32", num(rms_vs_fp32)},
        {"repeat", o.repeat},
        {"iterations", o.iterations}};
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
  }
}

}  // namespace

void register_bench(CLI::App& app) {
  auto* sub =
      app.add_subcommand("bench", "time per network call: network alone, from a CUDA graph, and inside a sampler");
  static BenchOptions o;
  o.model.add(*sub);
  o.s.add(*sub, SamplingFlags::kConditioning | SamplingFlags::kGrid);
  sub->add_option("--sampler", o.sampler, "sampler name, or a comma list (one measurement each)")
      ->capture_default_str();
  sub->add_option("--sampler-args", o.sampler_args, "sampler options k=v,...");
  sub->add_option("--batch", o.batches, "samples per network call, or a comma list, e.g. 1,2,4,8,64")
      ->capture_default_str();
  sub->add_option("--nfe", o.nfe, "network calls per sampler run")->capture_default_str();
  sub->add_option("--repeat", o.repeat, "timed runs of each measurement (the median is reported)")
      ->capture_default_str();
  sub->add_option("--iterations", o.iterations, "network calls per timed run of the network alone")
      ->capture_default_str();
  sub->add_option("--dtype", o.dtype, "fp32 | fp16 | bf16 (CUDA autocast)")->capture_default_str();
  sub->add_flag("--cuda-graph", o.cuda_graph, "also time the network and the sampler replayed from a CUDA graph");
  sub->add_option(
         "--optimize-max-batch", o.optimize_max_batch,
         "CPU: the largest batch the optimised module serves (to time it beyond the default; -1: chosen by timing "
         "at load, as every command does)")
      ->capture_default_str();
  sub->add_flag("--json", o.json, "print one JSON line per (sampler, batch) on stdout");
  set_action(sub, [] { run(o); });
}

}  // namespace scoreflow::cli
