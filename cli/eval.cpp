// scoreflow eval: the parent of the evaluation subcommands.
#include "cli/eval.h"

#include "scoreflow/args.h"
#include "scoreflow/error.h"
#include "scoreflow/score_matching.h"

namespace scoreflow::cli {

std::vector<double> eval_sigmas(const std::string& explicit_list, int timesteps, const NoiseSchedule& schedule) {
  if (explicit_list.empty()) return eval::evaluation_sigmas(schedule, timesteps);
  std::vector<double> sigmas = parse_double_list(explicit_list, "--sigmas");
  for (double s : sigmas)
    if (!(s > 0)) fail("--sigmas: noise levels must be > 0, got ", s);
  return sigmas;
}

void register_eval(CLI::App& app) {
  auto* eval = app.add_subcommand("eval", "evaluate a model: score matching, Wasserstein bounds, Frechet distance");
  eval->require_subcommand(1);
  register_eval_score_matching(*eval);
  register_eval_wbound(*eval);
  register_eval_fid(*eval);
}

}  // namespace scoreflow::cli
