// scoreflow info: metadata, schedule range, input shape, and one dry forward (scoreflow::model_info).
#include <cstdio>

#include "cli/common.h"
#include "cli/cpu_path.h"
#include "scoreflow/model_info.h"

namespace scoreflow::cli {

void register_info(CLI::App& app) {
  auto* sub = app.add_subcommand("info", "print a model's metadata and schedule, and run one dry forward");
  static ModelOptions opts;
  static bool as_json = false;
  opts.add(*sub);
  sub->add_flag("--json", as_json, "print one JSON document");
  set_action(sub, [] {
    std::shared_ptr<const Model> model = opts.open();
    const ModelInfo info = model_info(model, cpu_path_text(*model));
    if (as_json) return print_json(info.json);
    std::fputs(info.text.c_str(), stdout);
  });
}

}  // namespace scoreflow::cli
