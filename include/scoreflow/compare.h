#pragma once
/// `scoreflow compare` as a library call: a sweep over samplers × NFE budgets (× σ grids) from the
/// same seeds, each cell scored by one SampleMetric, resumable cell by cell through a chunk store,
/// written as a markdown table, a CSV, an SVG plot and (image models) one image grid per cell.
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "scoreflow/checkpoint.h"
#include "scoreflow/final_step.h"
#include "scoreflow/latent.h"
#include "scoreflow/model.h"
#include "scoreflow/run.h"
#include "scoreflow/sample_metric.h"

namespace scoreflow::eval {

/// One cell of a sweep: a sampler at one NFE budget (on one σ grid with a schedule axis).
struct SweepCell {
  std::string sampler;
  std::string schedule;  ///< the σ grid when the sweep has a schedule axis ("" otherwise)
  int nfe_budget = 0;
  int steps = 0;      ///< steps the sampler chose for the budget (Sampler::steps_for_nfe)
  long nfe_used = 0;  ///< network calls actually made per sample
  double metric = 0;
  double seconds = 0;  ///< wall time of sampling + metric
  std::string error;   ///< non-empty when the cell could not run (e.g. NFE below the minimum)
  bool ok() const { return error.empty(); }
};

}  // namespace scoreflow::eval

namespace scoreflow::jobs {

struct CompareOptions {
  std::vector<std::string> samplers;                ///< sampler names (make_sampler)
  std::map<std::string, std::string> sampler_args;  ///< k=v,... options of a sampler in `samplers`, by name
  std::vector<int> nfe;  ///< NFE budgets (>= 0; one below a sampler's minimum fails its cell)
  /// The σ grid: a grid name or file:PATH, and the named grid's options. A sampler with a trained
  /// grid (an AMED predictor=/table= file) runs on it at the budget that grid gives, unless
  /// schedule_given.
  std::string schedule = "karras", schedule_args;
  bool schedule_given = false;
  std::vector<std::string> schedules;  ///< a schedule axis (names and files, their defaults); empty: `schedule`
  bool force = false;                  ///< use schedule files made for another model
  std::string final;                   ///< zero | none | denoise, or "" for each sampler's default
  /// Seeds (at least 2), batch and conditioning of every cell; the device is the model's.
  SampleJob job;
  eval::SampleMetricOptions metric;
  std::string out_dir;    ///< table.md, grids, and the unfinished cells (chunk_folder(out_dir))
  std::string csv, plot;  ///< "" for out_dir/results.csv and out_dir/plot.svg
  bool log_x = false, log_y = false;
  bool overwrite = false;  ///< discard an unfinished run's cells instead of resuming
  /// Settings the caller adds to the resume record after the sweep's own (e.g. its conditioning
  /// inputs' fingerprint), so that a run with other inputs does not reuse the cells.
  io::Settings extra_settings;
  /// How the outputs are named in messages (a front end gives its flags).
  std::string out_dir_name = "out_dir", csv_name = "csv", plot_name = "plot";
  /// After each cell, with the cells done and their total.
  std::function<void(int64_t done, int64_t total)> on_cell;
};

struct CompareResult {
  std::vector<eval::SweepCell> cells;  ///< sampler-major, then schedule, then budget
  std::vector<FinalStep> finals;       ///< each cell's final step
  std::string label;                   ///< the metric's label
  std::vector<std::string> schedules;  ///< the schedule axis (`schedule` alone without one)
  std::string table, table_path, csv_path, plot_path;
  std::vector<std::string> grids;  ///< image grids written (image-shaped models), cell order
  int64_t num_samples = 0;
  int64_t resumed = 0;  ///< cells (and the ode-error reference) taken from an unfinished run
};

/// Runs the sweep and writes its outputs. Everything is checked before the first sampler runs:
/// sampler names and args, budgets, grids and schedule files, the metric and its references, the
/// conditioning and the outputs; Error names the field. A cell that cannot run (a budget below the
/// sampler's minimum) reports its error in the cell.
CompareResult run_compare(std::shared_ptr<const Model> model, const ImageDecoder& decoder,
                          const CompareOptions& options);

/// Per-sampler options from items "NAME:k=v,..." (e.g. amed:predictor=amed.pt), by name; throws
/// Error naming the field sampler_args and the item when one has no NAME: part.
std::map<std::string, std::string> parse_named_sampler_args(const std::vector<std::string>& items);

/// NFE budgets from numbers that must be non-negative integers; throws Error naming the field nfe
/// and the value otherwise.
std::vector<int> nfe_budgets(const std::vector<double>& values);

/// The sweep's summary as `scoreflow compare --json` prints it (command, metric, metric_label,
/// num_samples, schedule, schedules, one object per cell, output paths); the caller adds the model
/// and its wall time.
nlohmann::json to_json(const CompareResult& result, const CompareOptions& options);

/// The text `scoreflow compare` prints: the metric's label, the markdown table and where the files
/// went.
std::string compare_text(const CompareResult& result, const CompareOptions& options);

}  // namespace scoreflow::jobs
