// Network vs sampler time per call, side by side (scoreflow/bench.h).
#include "scoreflow/bench.h"

#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

#include "io/text.h"
#include "scoreflow/cpu_fast_path.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"

namespace scoreflow::jobs {
namespace {

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

double ms(double s) { return std::isnan(s) ? NAN : s * 1e3; }

}  // namespace

void BenchOptions::validate() const {
  if (repeat < 1) fail(Field{"repeat"}, " must be >= 1, got ", repeat);
  if (iterations < 1) fail(Field{"iterations"}, " must be >= 1, got ", iterations);
}

std::vector<int> parse_batch_sizes(const std::string& text) {
  std::vector<int> batches;
  for (const std::string& b : io::split(text, ',')) {
    if (b.empty()) continue;
    int v = 0;
    try {
      size_t pos = 0;
      v = std::stoi(b, &pos);
      if (pos != b.size()) v = 0;
    } catch (const std::exception&) {
    }
    if (v < 1) fail(Field{"batch"}, " must be a list of integers >= 1, got '", text, "'");
    batches.push_back(v);
  }
  if (batches.empty()) fail(Field{"batch"}, " must be a list of integers >= 1, got '", text, "'");
  return batches;
}

std::vector<BenchCase> bench_cases(const std::string& samplers, const std::string& sampler_args,
                                   const std::string& final, const std::vector<int>& batches, int nfe) {
  std::vector<BenchCase> cases;
  for (const std::string& name : io::split(samplers, ',')) {
    if (name.empty()) continue;
    for (int b : batches) {
      BenchCase c{make_sampler(name, sampler_args), FinalStep::Zero, {}};
      c.final = choose_final(final, *c.sampler, sampler_args);
      c.sampler->steps_for_nfe(nfe, c.final);  // refuses an NFE too small for the method
      c.job.seeds.resize(static_cast<size_t>(b));
      std::iota(c.job.seeds.begin(), c.job.seeds.end(), uint64_t{0});
      cases.push_back(std::move(c));
    }
  }
  if (cases.empty()) fail(Field{"sampler"}, " names no sampler");
  return cases;
}

double median_seconds(const torch::Device& device, int repeat, const std::function<void()>& fn) {
  fn();
  sync(device);
  std::vector<double> times;
  for (int r = 0; r < repeat; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    sync(device);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

BenchResult bench_sampler(const std::shared_ptr<Model>& model, const Sampler& sampler, const std::string& sampler_args,
                          FinalStep final, const SampleJob& job, const BenchOptions& o) {
  const torch::ScalarType dtype = parse_inference_dtype(o.dtype);
  const torch::Device device = model->device();
  BenchResult r;
  r.batch = static_cast<int>(job.seeds.size());
  GridChoice choice = o.grid;
  choice.schedule_given = true;
  choice.steps = -1;
  choice.nfe = o.nfe;
  const std::vector<double> sigmas = choose_grid(choice, *model, sampler, sampler_args, final).sigmas;
  r.steps = sampler.steps_for_nfe(o.nfe, final);
  r.nfe = sampler.nfe_for(r.steps, final);
  const torch::Tensor x0 = (NoiseSource(job.seeds).randn(model->metadata().shape) * sigmas.front()).to(device);
  // The network alone at a noise level the sampler evaluates: never the grid's last one, which may be
  // 0 (one step: [sigma_max, 0]) and which a discrete-time network cannot take.
  const double sigma_mid = sigmas[(sigmas.size() - 1) / 2];
  const Conditioning conditioning = batch_conditioning(job, 0, r.batch, device);
  torch::NoGradGuard no_grad;
  auto sample_once = [&]() {
    NoiseSource noise(job.seeds);
    Denoiser denoiser(model, conditioning);
    torch::Tensor x = sampler.sample(denoiser, x0.clone(), sigmas, noise);
    if (final == FinalStep::Denoise) x = denoiser(x, sigmas.back());
    denoiser.check_finite();
    return x;
  };
  const double calls = static_cast<double>(r.nfe);

  // 1. The network alone, eagerly; 2. the full sampler, eagerly.
  model->configure({dtype, false});
  r.network =
      median_seconds(device, o.repeat, [&] { model->network_only(x0, sigma_mid, o.iterations, false); }) / o.iterations;
  r.sampler_per_call = median_seconds(device, o.repeat, [&] { sample_once(); }) / calls;
  // 3. and 4.: the same from a CUDA graph, when asked for and possible.
  if (o.cuda_graph) {
    model->configure({dtype, true});
    sample_once();  // captures
    r.cuda_graph_note = model->inference_note();
    if (r.cuda_graph_note.empty()) {
      r.network_graph =
          median_seconds(device, o.repeat, [&] { model->network_only(x0, sigma_mid, o.iterations, true); }) /
          o.iterations;
      r.sampler_graph_per_call = median_seconds(device, o.repeat, [&] { sample_once(); }) / calls;
    }
  }
  // Quality cost of reduced precision: the same sampler run in fp32 and in dtype, same noise.
  if (dtype != torch::kFloat32) {
    model->configure({torch::kFloat32, false});
    torch::Tensor ref = sample_once().to(torch::kFloat64);
    model->configure({dtype, false});
    torch::Tensor low = sample_once().to(torch::kFloat64);
    r.rms_vs_fp32 = (low - ref).pow(2).mean().sqrt().item<double>() / std::max(ref.std().item<double>(), 1e-12);
  }
  r.model = model->name();
  r.sampler = sampler.name();
  r.sampler_args = sampler_args;
  r.device = device.str();
  r.dtype = o.dtype;
  r.final = final;
  r.repeat = o.repeat;
  r.iterations = o.iterations;
  r.cuda_graph_requested = o.cuda_graph;
  const CpuOptimization cpu = cpu_optimization(*model);
  r.cpu_optimized = cpu.active && r.batch <= cpu.max_batch;
  if (has_cpu_fast_path(*model)) r.cpu_module = r.cpu_optimized ? cpu.module : "plain";
  return r;
}

std::string BenchResult::text() const {
  char line[512];
  std::string out;
  auto add = [&](int n) { out.append(line, std::min<size_t>(static_cast<size_t>(std::max(n, 0)), sizeof line - 1)); };
  add(std::snprintf(line, sizeof line, "%s on %s, batch %d, %s, %lld NFE (%d steps), dtype %s\n", sampler.c_str(),
                    device.c_str(), batch, model.c_str(), static_cast<long long>(nfe), steps, dtype.c_str()));
  add(std::snprintf(line, sizeof line, "  network alone            %9.4f ms/call\n", ms(network)));
  add(std::snprintf(line, sizeof line, "  sampler                  %9.4f ms/call  (overhead %+.2f%%)\n",
                    ms(sampler_per_call), 100 * overhead()));
  if (!std::isnan(network_graph)) {
    add(std::snprintf(line, sizeof line, "  network from CUDA graph  %9.4f ms/call\n", ms(network_graph)));
    add(std::snprintf(line, sizeof line,
                      "  sampler, CUDA graph      %9.4f ms/call  (overhead %+.2f%% vs graph replay)\n",
                      ms(sampler_graph_per_call), 100 * overhead_graph()));
  }
  if (!std::isnan(rms_vs_fp32))
    add(std::snprintf(line, sizeof line, "  %s vs fp32: RMS sample difference %.3g (relative to the samples' std)\n",
                      dtype.c_str(), rms_vs_fp32));
  return out;
}

nlohmann::json BenchResult::to_json() const {
  auto num = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
  return {{"command", "bench"},
          {"model", model},
          {"sampler", sampler},
          {"sampler_args", sampler_args},
          {"device", device},
          {"batch", batch},
          {"nfe", nfe},
          {"steps", steps},
          {"final", final_step_name(final)},
          {"dtype", dtype},
          {"cuda_graph_requested", cuda_graph_requested},
          {"cuda_graph_note", cuda_graph_note},
          {"cpu_optimized", cpu_optimized},
          {"cpu_module", cpu_module},
          {"network_ms", ms(network)},
          {"sampler_ms_per_call", ms(sampler_per_call)},
          {"sampler_overhead", overhead()},
          {"network_graph_ms", num(ms(network_graph))},
          {"sampler_graph_ms_per_call", num(ms(sampler_graph_per_call))},
          {"sampler_graph_overhead", num(overhead_graph())},
          {"rms_vs_fp32", num(rms_vs_fp32)},
          {"repeat", repeat},
          {"iterations", iterations}};
}

}  // namespace scoreflow::jobs
