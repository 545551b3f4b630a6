// scoreflow bench: milliseconds per network call for the network alone, the network replayed from
// a CUDA graph, and a full sampler run (jobs::bench_sampler); this reads flags and prints.
#include "scoreflow/bench.h"

#include <cstdio>
#include <numeric>

#include "cli/common.h"
#include "cli/cpu_path.h"
#include "cli/list_arg.h"
#include "cli/sampling_flags.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"

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

struct Case {
  std::unique_ptr<Sampler> sampler;
  FinalStep final;
  SampleJob job;  // seeds 0..batch-1 and their conditioning (guidance doubles the network batch)
};

void run(BenchOptions& o) {
  if (o.b.repeat < 1) fail("--repeat must be >= 1, got ", o.b.repeat);
  if (o.b.iterations < 1) fail("--iterations must be >= 1, got ", o.b.iterations);
  if (o.optimize_max_batch < LoadOptions::kTimedChoice)
    fail("--optimize-max-batch must be >= 0 (or -1: timed at load), got ", o.optimize_max_batch);
  cli_load_options().optimize_max_batch = o.optimize_max_batch;
  const torch::ScalarType dtype = parse_inference_dtype(o.b.dtype);
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
      Case c{make_sampler(name, o.sampler_args), FinalStep::Zero, {}};
      c.final = final_step_for(o.s.final, *c.sampler, o.sampler_args);
      c.sampler->steps_for_nfe(o.b.nfe, c.final);  // refuses an NFE too small for the method
      cases.push_back(std::move(c));
      cases.back().job.seeds.resize(static_cast<size_t>(b));
      std::iota(cases.back().job.seeds.begin(), cases.back().job.seeds.end(), uint64_t{0});
    }
  }
  if (cases.empty()) fail("--sampler names no sampler");
  for (Case& c : cases) {  // conditioning is checked for every batch size before any timing
    const auto batch = static_cast<int64_t>(c.job.seeds.size());
    c.job.guidance = o.s.guidance;
    o.s.cond.apply(*model, c.job, batch, 0, batch);
  }
  o.b.grid.schedule = o.s.schedule;
  o.b.grid.schedule_args = o.s.schedule_args;
  o.b.grid.force = o.s.force;
  for (const Case& c : cases) {
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
