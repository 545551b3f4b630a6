// scoreflow eval: the parent of the evaluation subcommands.
#include "cli/eval.h"

#include "scoreflow/args.h"

namespace scoreflow::cli {

std::vector<double> parse_sigmas(const std::string& text) {
  return text.empty() ? std::vector<double>{} : parse_double_list(text, "--sigmas");
}

void register_eval(CLI::App& app) {
  auto* eval = app.add_subcommand("eval", "evaluate a model: score matching, Wasserstein bounds, Frechet distance");
  eval->require_subcommand(1);
  register_eval_score_matching(*eval);
  register_eval_wbound(*eval);
  register_eval_fid(*eval);
}

}  // namespace scoreflow::cli
