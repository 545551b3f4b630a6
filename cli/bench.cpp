// scoreflow bench: milliseconds per network call for the network alone, the network replayed from
// a CUDA graph, and a full sampler run (jobs::bench_sampler); this reads flags and prints.
#include "scoreflow/bench.h"

#include <cstdio>

#include "cli/common.h"
#include "cli/cpu_path.h"
#include "cli/sampling_flags.h"
#include "scoreflow/error.h"

namespace scoreflow::cli {
namespace {

struct BenchOptions {
  ModelOptions model;
  SamplingFlags s;  // conditioning (--cond, --guidance, ...) for the sampled batch; --schedule, --final, --force
  std::string sampler = "dpmpp_2m", sampler_args, batches = "64";
  jobs::BenchOptions b;  // --nfe, --repeat, --iterations, --dtype, --cuda-graph
  bool json = false;
  int optimize_max_batch = LoadOptions::kTimedChoice;
};

void run(BenchOptions& o) {
  o.b.validate();
  cli_load_options().optimize_max_batch = o.optimize_max_batch;
  const torch::ScalarType dtype = parse_inference_dtype(o.b.dtype);
  // Everything is checked before the first (slow) measurement.
  const std::vector<int> batches = jobs::parse_batch_sizes(o.batches);
  auto model = o.model.open();
  model->configure({dtype, false});
  if (const std::string cpu = cpu_path_text(*model); !cpu.empty()) std::fprintf(stderr, "cpu path: %s\n", cpu.c_str());
  std::vector<jobs::BenchCase> cases = jobs::bench_cases(o.sampler, o.sampler_args, o.s.final, batches, o.b.nfe);
  for (jobs::BenchCase& c : cases) {  // conditioning is checked for every batch size before any timing
    const auto batch = static_cast<int64_t>(c.job.seeds.size());
    c.job.guidance = o.s.guidance;
    o.s.cond.apply(*model, c.job, batch, 0, batch);
  }
  o.b.grid.schedule = o.s.schedule;
  o.b.grid.schedule_args = o.s.schedule_args;
  o.b.grid.force = o.s.force;
  for (const jobs::BenchCase& c : cases) {
    const jobs::BenchResult r = jobs::bench_sampler(model, *c.sampler, o.sampler_args, c.final, c.job, o.b);
    if (!r.cuda_graph_note.empty()) std::fprintf(stderr, "note: %s\n", r.cuda_graph_note.c_str());
    std::fputs(r.text().c_str(), stderr);
    if (o.json) {
      std::printf("%s\n", r.to_json().dump().c_str());
      std::fflush(stdout);
    }
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
  sub->add_option("--nfe", o.b.nfe, "network calls per sampler run")->capture_default_str();
  sub->add_option("--repeat", o.b.repeat, "timed runs of each measurement (the median is reported)")
      ->capture_default_str();
  sub->add_option("--iterations", o.b.iterations, "network calls per timed run of the network alone")
      ->capture_default_str();
  sub->add_option("--dtype", o.b.dtype, "fp32 | fp16 | bf16 (CUDA autocast)")->capture_default_str();
  sub->add_flag("--cuda-graph", o.b.cuda_graph, "also time the network and the sampler replayed from a CUDA graph");
  sub->add_option(
         "--optimize-max-batch", o.optimize_max_batch,
         "CPU: the largest batch the optimised module serves (to time it beyond the default; -1: chosen by timing "
         "at load, as every command does)")
      ->capture_default_str();
  sub->add_flag("--json", o.json, "print one JSON line per (sampler, batch) on stdout");
  set_action(sub, [] { run(o); });
}

}  // namespace scoreflow::cli
