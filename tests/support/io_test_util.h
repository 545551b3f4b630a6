#pragma once
/// Helpers for the io tests: a fresh temporary directory per test, raw file writes, and running
/// Debian's /usr/bin/python3 (numpy) as an independent reader/writer of our formats.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "scoreflow/error.h"
#include "scoreflow/npy.h"

namespace scoreflow::testing_io {

/// A test fixture owning an empty directory, removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) / ("scoreflow_" + std::string(info->test_suite_name()) + "_" +
                                                          info->name() + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all, ec);
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  /// Names of the entries directly in the temp dir (to catch stray temporary files).
  std::vector<std::string> entries(const std::string& sub = "") const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir_ / sub)) out.push_back(e.path().filename().string());
    return out;
  }
  std::filesystem::path dir_;
};

/// TempDirTest that also writes [n, d] point sets as float32 .npy files (the eval tests' data).
class PointsDirTest : public TempDirTest {
 protected:
  std::string points(const std::string& name, const torch::Tensor& rows) {
    const std::string p = path(name);
    io::write_npy(p, io::from_tensor(rows.to(torch::kFloat32).contiguous()));
    return p;
  }
};

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// True when /usr/bin/python3 with numpy is present (the interop tests skip otherwise).
inline bool have_numpy() {
  static const bool ok = std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
  return ok;
}

/// Runs `script` (written to a file in `dir`) with /usr/bin/python3 and the given arguments;
/// returns its exit status and its stdout+stderr in `output`.
inline int run_python(const std::string& dir, const std::string& script, const std::string& args, std::string* output) {
  const std::string file = dir + "/script.py";
  std::ofstream(file) << script;
  const std::string cmd = "/usr/bin/python3 " + file + " " + args + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return -1;
  char buf[4096];
  output->clear();
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) output->append(buf, n);
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Asserts that `fn` throws scoreflow::Error whose message contains every one of `parts`.
template <typename Fn>
void expect_error(Fn&& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected scoreflow::Error";
  } catch (const scoreflow::Error& e) {
    const std::string msg = e.what();
    for (const auto& part : parts)
      EXPECT_NE(msg.find(part), std::string::npos) << "message: " << msg << "\nmissing: " << part;
  }
}

}  // namespace scoreflow::testing_io
