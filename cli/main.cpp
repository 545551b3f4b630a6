// scoreflow: the command line. Subcommands live one per file; this maps errors to exit codes:
// 0 success, 1 a scoreflow::Error (bad input, failed job), 2 a usage error.
#include <ATen/Parallel.h>

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <thread>

#include "cli/common.h"
#include "scoreflow/error.h"

namespace {
/// A crash is a bug in scoreflow or below it: say so on one line and, with SCOREFLOW_BACKTRACE=1,
/// print the stack (async-signal-safe calls only), then die of the same signal.
void on_crash(int sig) {
  const char* msg = sig == SIGSEGV ? "error: scoreflow crashed (segmentation fault); please report it with the command line\n"
                                   : "error: scoreflow crashed (fatal signal); please report it with the command line\n";
  ssize_t ignored = write(STDERR_FILENO, msg, std::strlen(msg));
  (void)ignored;
  if (const char* env = getenv("SCOREFLOW_BACKTRACE"); env && env[0] == '1') {
    void* frames[64];
    backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}
}  // namespace

int main(int argc, char** argv) {
  signal(SIGSEGV, on_crash);
  signal(SIGBUS, on_crash);
  CLI::App app{"scoreflow: diffusion-model sampling, Analytic-DPM and evaluation on LibTorch"};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "CPU threads for LibTorch (default: all cores)");
  scoreflow::cli::register_sample(app);
  scoreflow::cli::register_list(app);
  scoreflow::cli::register_info(app);
  scoreflow::cli::register_analytic(app);
  scoreflow::cli::register_train_amed(app);
  scoreflow::cli::register_eval(app);
  scoreflow::cli::register_compare(app);
  scoreflow::cli::register_bench(app);
  scoreflow::cli::register_merge(app);
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
    at::set_num_threads(threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    for (CLI::App* sub : app.get_subcommands()) scoreflow::cli::run_action(sub);
  } catch (const scoreflow::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
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
