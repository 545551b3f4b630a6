#pragma once
// Runs the scoreflow executable for CLI tests: exit code, stdout, stderr.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace scoreflow::clitest {

struct Result {
  int code;
  std::string out, err;
};

inline Result run(const std::string& args) {
  static int counter = 0;
  std::string err_file = ::testing::TempDir() + "/cli_err_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + ".txt";
  std::string cmd = std::string(SCOREFLOW_CLI_PATH) + " --threads 1 " + args + " 2>" + err_file;
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  int status = pclose(pipe);
  std::ifstream in(err_file);
  std::stringstream ss;
  ss << in.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out, ss.str()};
}

/// A fresh path under the test temp dir.
inline std::string tmp(const std::string& name) {
  std::string dir = ::testing::TempDir() + "/scoreflow_cli";
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

/// One stderr line starting with "error:" that contains `needle`, non-zero exit, and `output`
/// (if given) not created.
inline void expect_refused(const std::string& args, const std::string& needle, const std::string& output = "") {
  if (!output.empty()) std::filesystem::remove(output);
  Result r = run(args);
  EXPECT_NE(r.code, 0) << args;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << args << "\nstderr: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "exactly one line: " << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\nstderr: " << r.err;
  if (!output.empty()) EXPECT_FALSE(std::filesystem::exists(output)) << output << " left behind";
}

}  // namespace scoreflow::clitest
