// io::install_crash_report: a crash becomes one `error:` line and death by the same signal.
#include "scoreflow/crash_report.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace {

TEST(CrashReport, OneErrorLineThenTheSameSignal) {
  for (int sig : {SIGSEGV, SIGBUS}) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      dup2(fds[1], STDERR_FILENO);
      close(fds[0]);
      unsetenv("SCOREFLOW_BACKTRACE");
      scoreflow::io::install_crash_report();
      raise(sig);
      _exit(0);  // not reached
    }
    close(fds[1]);
    std::string err;
    char buf[256];
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<size_t>(n));
    close(fds[0]);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << err;
    EXPECT_EQ(WTERMSIG(status), sig);
    const std::string what = sig == SIGSEGV ? "segmentation fault" : "fatal signal";
    EXPECT_EQ(err, "error: scoreflow crashed (" + what + "); please report it with the command line\n");
  }
}

}  // namespace
