#pragma once
// Shared CLI pieces: model options, device parsing, progress bar, JSON output.
#include <torch/types.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "scoreflow/device.h"
#include "scoreflow/jobs/clock.h"
#include "scoreflow/model.h"
#include "scoreflow/sampler.h"
#include "scoreflow/seeds.h"

namespace scoreflow::cli {

/// --model, --meta k=v (repeatable), --meta-file, --device.
struct ModelOptions {
  std::string model;
  std::vector<std::string> meta;
  std::string meta_file;
  std::string device = "cpu";
  std::string cpu_module = "optimized";
  int cpu_teams = 0;
  void add(CLI::App& app, bool with_device = true);
  std::shared_ptr<Model> open() const;
};

// Devices and CPU threads are the library's (scoreflow/device.h).
using scoreflow::kGpuHostThreads;
using scoreflow::parse_device;
using scoreflow::set_cpu_threads;

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "");
  void update(int64_t done, const std::string& extra = "");
  void finish();

 private:
  std::string label_, unit_;
  int64_t total_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_, last_;
};

/// The help text of --final, the same for every command.
extern const char* const kFinalHelp;

using jobs::seconds_since;

inline constexpr const char* kForceHelp = "use a --schedule file:PATH made for another model anyway";

/// Prints `doc` on stdout as one JSON document.
void print_json(const nlohmann::json& doc);

/// Each subcommand registers itself and its action; main() parses, then runs the chosen action
/// (so that errors from the action are reported apart from usage errors).
void set_action(CLI::App* sub, std::function<void()> action);
void run_action(CLI::App* sub);

void register_sample(CLI::App& app);
void register_list(CLI::App& app);
void register_info(CLI::App& app);
void register_analytic(CLI::App& app);
/// train-amed and amed-table.
void register_train_amed(CLI::App& app);
void register_eval(CLI::App& app);  // eval score-matching | wbound | fid (cli/eval*.cpp)
void register_compare(CLI::App& app);
void register_bench(CLI::App& app);            // cli/bench.cpp
void register_merge(CLI::App& app);            // cli/merge.cpp
void register_search_schedule(CLI::App& app);  // cli/search_schedule.cpp

}  // namespace scoreflow::cli
