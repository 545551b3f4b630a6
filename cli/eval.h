#pragma once
// `scoreflow eval ...`: one file per evaluation subcommand, registered under the `eval` command.
// The jobs are the library's (scoreflow/jobs/eval.h); these files read flags and print.
#include "cli/common.h"

namespace scoreflow::cli {

void register_eval_score_matching(CLI::App& eval);
void register_eval_wbound(CLI::App& eval);
void register_eval_fid(CLI::App& eval);

/// "0.5,1,2" -> σ levels ({} when empty: the job's --timesteps levels).
std::vector<double> parse_sigmas(const std::string& text);

}  // namespace scoreflow::cli
