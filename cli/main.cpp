// scoreflow: the command line. Subcommands live one per file; this maps errors to exit codes:
// 0 success, 1 a scoreflow::Error (bad input, failed job; the fields it names are shown as flags), 2 a
// usage error.

#include <dlfcn.h>
#include <execinfo.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "cli/common.h"
#include "cli/error_flags.h"
#include "scoreflow/error.h"

namespace {
/// A crash is a bug in scoreflow or below it: say so on one line and, with SCOREFLOW_BACKTRACE=1,
/// print the stack — the unwinder's frames, then the faulting PC and the code addresses found in
/// the top stack words (this still names the caller when the crash is a jump to a bad address,
/// which the unwinder cannot get past) — then die of the same signal.
void print_address(const char* label, void* addr) {
  Dl_info info{};
  char line[512];
  int n;
  if (addr && dladdr(addr, &info) && info.dli_fname) {
    n = std::snprintf(line, sizeof line, "%s %p %s(%s+%#lx)\n", label, addr, info.dli_fname,
                      info.dli_sname ? info.dli_sname : "?",
                      static_cast<unsigned long>(static_cast<char*>(addr) -
                                                 static_cast<char*>(info.dli_sname ? info.dli_saddr : info.dli_fbase)));
  } else {
    n = std::snprintf(line, sizeof line, "%s %p\n", label, addr);
  }
  ssize_t ignored = write(STDERR_FILENO, line, static_cast<size_t>(std::max(n, 0)));
  (void)ignored;
}

void on_crash(int sig, siginfo_t* si, void* context) {
  const char* msg = sig == SIGSEGV
                        ? "error: scoreflow crashed (segmentation fault); please report it with the command line\n"
                        : "error: scoreflow crashed (fatal signal); please report it with the command line\n";
  ssize_t ignored = write(STDERR_FILENO, msg, std::strlen(msg));
  (void)ignored;
  if (const char* env = getenv("SCOREFLOW_BACKTRACE"); env && env[0] == '1') {
    void* frames[64];
    backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
    print_address("fault address", si ? si->si_addr : nullptr);
#if defined(__x86_64__)
    const auto* uc = static_cast<const ucontext_t*>(context);
    print_address("pc", reinterpret_cast<void*>(uc->uc_mcontext.gregs[REG_RIP]));
    auto* sp = reinterpret_cast<void**>(uc->uc_mcontext.gregs[REG_RSP]);
    for (int i = 0; i < 48; ++i) {
      Dl_info info{};
      if (sp[i] && dladdr(sp[i], &info) && info.dli_fname) print_address("stack", sp[i]);
    }
#endif
  }
  signal(sig, SIG_DFL);
  raise(sig);
}
}  // namespace

int main(int argc, char** argv) {
  struct sigaction crash {};
  crash.sa_sigaction = on_crash;
  crash.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &crash, nullptr);
  sigaction(SIGBUS, &crash, nullptr);
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
