#include "cli/common.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <map>

#include "cli/cpu_path.h"
#include "scoreflow/error.h"
#include "scoreflow/jobs.h"
#include "scoreflow/jobs/sample.h"
#include "scoreflow/model_info.h"

namespace scoreflow::cli {

void ModelOptions::add(CLI::App& app, bool with_device) {
  app.add_option("--model", model, "TorchScript model file, or builtin:NAME[:k=v,...]")->required();
  app.add_option("--meta", meta,
                 "override a metadata field: key=value (value as JSON; e.g. prediction=eps, shape=[1,32,32])");
  app.add_option("--meta-file", meta_file, "JSON file with metadata fields (merged over the archive's scoreflow.json)");
  if (with_device) app.add_option("--device", device, "cpu, cuda or cuda:N")->capture_default_str();
  app.add_flag_callback(
      "--no-optimize", [] { cli_load_options().optimize = false; },
      "CPU: run the TorchScript network as loaded (default: frozen + optimize_for_inference, checked against the "
      "plain network at load and used for batches up to 1, 8 or all where timing both at load found it faster; "
      "module and choice cached in $SCOREFLOW_CACHE_DIR or ~/.cache/scoreflow)");
  app.add_option("--cpu-module", cpu_module,
                 "CPU: the accelerated module: optimized (frozen + optimize_for_inference) or fused (frozen + oneDNN "
                 "Graph fusion where LibTorch has it; compiles each batch size at first use, see docs/performance.md)")
      ->capture_default_str();
  app.add_option("--cpu-teams", cpu_teams, "CPU: split a call over N thread teams (0: automatic, 32+ rows; 1: off)");
}

std::shared_ptr<Model> ModelOptions::open() const {
  const torch::Device dev = parse_device(device);
  LoadOptions load = cli_load_options();
  load.cpu_module = parse_cpu_module(cpu_module);
  load.cpu_teams = cpu_teams;
  return open_model(model, meta_file, meta, dev, load);
}

LoadOptions& cli_load_options() {
  static LoadOptions options = [] {
    LoadOptions o;
    o.optimize = true;
    o.optimize_max_batch = LoadOptions::kTimedChoice;
    return o;
  }();
  return options;
}

std::string cpu_path_text(const Model& model) {
  return cpu_path_note(model, cli_load_options(), "plain module (--no-optimize)");
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      enabled_(isatty(fileno(stderr))),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

void Progress::update(int64_t done, const std::string& extra) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (done < total_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  const int width = 30;
  int filled = total_ > 0 ? static_cast<int>(width * done / total_) : width;
  double secs = seconds_since(start_);
  std::fprintf(stderr, "\r%s [%s%s] %lld/%lld%s %.1fs %s\033[K", label_.c_str(), std::string(filled, '=').c_str(),
               std::string(width - filled, ' ').c_str(), static_cast<long long>(done), static_cast<long long>(total_),
               unit_.empty() ? "" : (" " + unit_).c_str(), secs, extra.c_str());
  std::fflush(stderr);
}

void Progress::finish() {
  if (enabled_) std::fprintf(stderr, "\n");
}

static std::map<CLI::App*, std::function<void()>>& actions() {
  static std::map<CLI::App*, std::function<void()>> table;
  return table;
}

void set_action(CLI::App* sub, std::function<void()> action) { actions()[sub] = std::move(action); }

void run_action(CLI::App* sub) {
  auto it = actions().find(sub);
  if (it != actions().end()) it->second();
  for (CLI::App* nested : sub->get_subcommands()) run_action(nested);  // e.g. eval fid
}

void print_json(const nlohmann::json& doc) { std::cout << doc.dump(2) << std::endl; }

const char* const kFinalHelp =
    "after the grid's last sigma: zero (append sigma = 0; each sampler's own step into 0), none (stop at the last "
    "sigma and return x there), denoise (return D(x, sigma_last), one more NFE); default zero, none for amed";

}  // namespace scoreflow::cli
