#pragma once
/// Runs the scoreflow executable for CLI tests, capturing stdout and stderr: `run("sample ...")`
/// through the shell (one string, as a user types it), `run_cli({...})` without one (posix_spawn;
/// an exit code told from a crash signal), or `spawn_cli` in the background to kill it. The one
/// helper for every CLI test.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace scoreflow::testing_cli {

struct Outcome {
  int code = -1;   ///< exit status; when killed by a signal, -1 (run_cli) or 128 + signal (run)
  int signal = 0;  ///< the signal that ended it, or 0
  std::string out, err;
};
using Result = Outcome;

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

/// Runs `SCOREFLOW_CLI_PATH --threads 1 ARGS` through the shell (ARGS as typed: quotes, globs).
inline Outcome run(const std::string& args) {
  static int counter = 0;
  const std::string err_file =
      ::testing::TempDir() + "/cli_err_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + ".txt";
  const std::string cmd = std::string(SCOREFLOW_CLI_PATH) + " --threads 1 " + args + " 2>" + err_file;
  FILE* pipe = popen(cmd.c_str(), "r");
  Outcome r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(pipe);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + r.signal;
  r.err = slurp(err_file);
  return r;
}

/// A path under the test temp dir (the folder is created; the file is not).
inline std::string tmp(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/scoreflow_cli";
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

/// One stderr line starting with "error:" that contains `needle`, non-zero exit, and `output`
/// (if given) not created.
inline void expect_refused(const std::string& args, const std::string& needle, const std::string& output = "") {
  if (!output.empty()) std::filesystem::remove(output);
  Outcome r = run(args);
  EXPECT_NE(r.code, 0) << args;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << args << "\nstderr: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "exactly one line: " << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\nstderr: " << r.err;
  if (!output.empty()) EXPECT_FALSE(std::filesystem::exists(output)) << output << " left behind";
}

}  // namespace scoreflow::testing_cli
