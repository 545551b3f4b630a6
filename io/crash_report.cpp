#include "scoreflow/crash_report.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace scoreflow::io {
namespace {

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

void install_crash_report() {
  struct sigaction crash {};
  crash.sa_sigaction = on_crash;
  crash.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &crash, nullptr);
  sigaction(SIGBUS, &crash, nullptr);
}

}  // namespace scoreflow::io
