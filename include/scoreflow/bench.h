#pragma once
/// `scoreflow bench` as a library call: milliseconds per network call for the network alone, the
/// network replayed from a CUDA graph, and a full sampler run, measured side by side in one process
/// so that the sampler's overhead (everything that is not the network) is a ratio of two numbers
/// taken together; with a reduced precision, also its RMS sample difference to fp32.
#include <torch/types.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "scoreflow/jobs.h"
#include "scoreflow/model.h"
#include "scoreflow/run.h"
#include "scoreflow/sampler.h"

namespace scoreflow::jobs {

struct BenchOptions {
  int nfe = 10;                ///< network calls per sampler run (the grid's steps: Sampler::steps_for_nfe)
  int repeat = 5;              ///< timed runs of each measurement (the median is reported)
  int iterations = 50;         ///< network calls per timed run of the network alone
  bool cuda_graph = false;     ///< also time both replayed from a CUDA graph
  std::string dtype = "fp32";  ///< fp32 | fp16 | bf16 (parse_inference_dtype)
  GridChoice grid;             ///< the σ grid's schedule, schedule_args and force (its steps come from nfe)
  /// Checks repeat and iterations (>= 1); throws Error naming the field.
  void validate() const;
};

/// The batch sizes of a comma list ("1,8,64": integers >= 1, at least one); throws Error naming
/// the field batch and the text otherwise.
std::vector<int> parse_batch_sizes(const std::string& text);

/// One measurement to take: a sampler, its final step and a job whose seeds 0..batch-1 are the batch.
struct BenchCase {
  std::unique_ptr<Sampler> sampler;
  FinalStep final = FinalStep::Zero;
  SampleJob job;  ///< seeds only; the caller adds conditioning (guidance doubles the network batch)
};

/// Every (sampler, batch) pair, sampler-major: the samplers of a comma list made with
/// `sampler_args`, each under `final` (choose_final) and checked to reach `nfe`. Throws Error
/// naming the field (sampler when the list names none) before any measurement.
std::vector<BenchCase> bench_cases(const std::string& samplers, const std::string& sampler_args,
                                   const std::string& final, const std::vector<int>& batches, int nfe);

/// One measurement: times in seconds per network call; NaN where not measured.
struct BenchResult {
  std::string model, sampler, sampler_args, device, dtype, cuda_graph_note;
  std::string cpu_module;  ///< the CPU module that ran this batch: "plain", "optimized" or "fused" ("" where
                           ///< the fast path does not act: off the CPU, builtins, .pt2 packages)
  int batch = 0, steps = 0, repeat = 0, iterations = 0;
  int64_t nfe = 0;
  FinalStep final = FinalStep::Zero;
  bool cuda_graph_requested = false, cpu_optimized = false;
  double network = 0, sampler_per_call = 0;  ///< eager
  double network_graph = NAN, sampler_graph_per_call = NAN;
  double rms_vs_fp32 = NAN;  ///< RMS sample difference to fp32 relative to the samples' std (dtype != fp32)
  double overhead() const { return sampler_per_call / network - 1; }
  double overhead_graph() const { return sampler_graph_per_call / network_graph - 1; }
  /// The lines `scoreflow bench` prints on stderr.
  std::string text() const;
  /// The JSON line of `scoreflow bench --json` (milliseconds; null where not measured).
  nlohmann::json to_json() const;
};

/// Median of `repeat` timings of fn(), in seconds, after one untimed warm-up call; each call is
/// followed by a device synchronisation.
double median_seconds(const torch::Device& device, int repeat, const std::function<void()>& fn);

/// Times `sampler` (made from `sampler_args`) under `final` on `model` for the seeds and
/// conditioning of `job` (its seeds are the batch), as `options` says. Leaves the model configured
/// eagerly in options.dtype.
BenchResult bench_sampler(const std::shared_ptr<Model>& model, const Sampler& sampler, const std::string& sampler_args,
                          FinalStep final, const SampleJob& job, const BenchOptions& options);

}  // namespace scoreflow::jobs
