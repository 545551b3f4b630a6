#pragma once
/// Runs the scoreflow executable as a child process (posix_spawn, no shell), capturing stdout and
/// stderr and telling an exit code from a crash signal; or starts it in the background to kill it.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace scoreflow::testing_cli {

struct Outcome {
  int code = -1;   ///< exit status, or -1 when killed by a signal
  int signal = 0;  ///< the signal that ended it, or 0
  std::string out, err;
};

/// An empty folder under the test temp dir, unique to this process: TempDir/scoreflow_<name>_<pid>.
inline std::string fresh_dir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/scoreflow_" + name + "_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Starts `SCOREFLOW_CLI_PATH --threads 1 args...` with stdout/stderr going to files; returns its pid.
/// `env` ("NAME=value") is added to this process's environment.
inline pid_t spawn_cli(const std::vector<std::string>& args, const std::string& out_file, const std::string& err_file,
                       std::vector<std::string> env = {}) {
  std::vector<std::string> argv_s{SCOREFLOW_CLI_PATH, "--threads", "1"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  std::vector<char*> envp;
  for (char** e = environ; *e; ++e) envp.push_back(*e);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data()) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

/// Waits for `pid` and reads what it wrote.
inline Outcome wait_cli(pid_t pid, const std::string& out_file, const std::string& err_file) {
  Outcome r;
  int status = 0;
  if (pid > 0 && waitpid(pid, &status, 0) == pid) {
    if (WIFEXITED(status)) r.code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  }
  r.out = slurp(out_file);
  r.err = slurp(err_file);
  return r;
}

/// Runs to completion; `scratch` is a path prefix for the captured streams.
inline Outcome run_cli(const std::vector<std::string>& args, const std::string& scratch,
                       std::vector<std::string> env = {}) {
  const std::string o = scratch + ".stdout", e = scratch + ".stderr";
  return wait_cli(spawn_cli(args, o, e, std::move(env)), o, e);
}

}  // namespace scoreflow::testing_cli
