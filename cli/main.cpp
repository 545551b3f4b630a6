// scoreflow: the command line. Subcommands live one per file; this maps errors to exit codes:
// 0 success, 1 a scoreflow::Error (bad input, failed job; the fields it names are shown as flags), 2 a
// usage error.

#include <iostream>

#include "cli/common.h"
#include "cli/error_flags.h"
#include "scoreflow/crash_report.h"
#include "scoreflow/error.h"

int main(int argc, char** argv) {
  scoreflow::io::install_crash_report();
  CLI::App app{"scoreflow: diffusion-model sampling, Analytic-DPM and evaluation on LibTorch"};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "CPU threads for LibTorch (default: all cores; 4 when the work runs on a GPU)");
  scoreflow::cli::register_sample(app);
  scoreflow::cli::register_list(app);
  scoreflow::cli::register_info(app);
  scoreflow::cli::register_analytic(app);
  scoreflow::cli::register_train_amed(app);
  scoreflow::cli::register_eval(app);
  scoreflow::cli::register_compare(app);
  scoreflow::cli::register_bench(app);
  scoreflow::cli::register_merge(app);
  scoreflow::cli::register_search_schedule(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  try {
    scoreflow::cli::set_cpu_threads(threads);
    for (CLI::App* sub : app.get_subcommands()) scoreflow::cli::run_action(sub);
  } catch (const scoreflow::Error& e) {
    std::cerr << "error: " << scoreflow::cli::flag_message(e) << "\n";
    return 1;
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    std::cerr << "error: " << msg.substr(0, msg.find('\n')) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
