#pragma once
/// Sampler × NFE sweeps (`scoreflow compare`): one cell per (sampler, NFE budget) — or per (sampler,
/// σ grid, NFE budget) with a schedule axis — written as a markdown table, CSV, and a hand-written SVG
/// plot of metric vs NFE.
/// Private to the library, its CLI and tests: not installed (docs/design.md §1).
#include <string>
#include <vector>

#include "scoreflow/compare.h"  // SweepCell

namespace scoreflow::eval {

/// Markdown table: one row per sampler (per sampler and schedule, in a second column, with a schedule
/// axis), one column per NFE budget; a cell shows the metric and "(NFE n)" when fewer calls than the
/// budget were used, or the error.
std::string sweep_markdown(const std::vector<SweepCell>& cells, const std::string& metric);
/// CSV with header sampler,nfe_budget,steps,nfe_used,metric,seconds,error — one row per cell; with
/// a schedule axis a schedule column follows sampler.
std::string sweep_csv(const std::vector<SweepCell>& cells, const std::string& metric);

struct PlotOptions {
  std::string title, x_label = "NFE", y_label;
  bool log_x = false, log_y = false;
  int width = 640, height = 420;
};
/// SVG line plot of metric vs NFE used, one polyline + markers per sampler (and schedule), with axes,
/// ticks and a legend. Failed cells and (with log_y) non-positive values are left out.
std::string sweep_svg(const std::vector<SweepCell>& cells, const PlotOptions& options);

}  // namespace scoreflow::eval
