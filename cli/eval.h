#pragma once
// `scoreflow eval ...`: one file per evaluation subcommand, registered under the `eval` command.
#include "cli/common.h"

namespace scoreflow::cli {

void register_eval_score_matching(CLI::App& eval);
void register_eval_wbound(CLI::App& eval);
void register_eval_fid(CLI::App& eval);

/// "0.5,1,2" -> σ levels, or K levels over the model's range (evaluation_sigmas) when empty.
std::vector<double> eval_sigmas(const std::string& explicit_list, int timesteps, const NoiseSchedule& schedule);

}  // namespace scoreflow::cli
