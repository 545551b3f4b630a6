// Replays the inputs the fuzzers found (tests/data/fuzz_regressions/<target>/) and their seed
// corpora (fuzz/seeds/<target>/) through the same entry points as the libFuzzer targets: each
// must be refused with scoreflow::Error or accepted — never crash, hang or throw anything else.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "fuzz/targets.h"

namespace fs = std::filesystem;

TEST(FuzzRegressions, EveryKeptInputIsRefusedCleanly) {
  int replayed = 0;
  for (const std::string root : {"/tests/data/fuzz_regressions/", "/fuzz/seeds/"}) {
    for (const auto& [name, entry] : scoreflow::fuzz::targets()) {
      const fs::path dir = std::string(SCOREFLOW_SOURCE_DIR) + root + name;
      if (!fs::is_directory(dir)) continue;
      for (const auto& file : fs::directory_iterator(dir)) {
        std::ifstream in(file.path(), std::ios::binary);
        const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
        EXPECT_NO_THROW(entry(bytes.data(), bytes.size())) << name << " on " << file.path();
        ++replayed;
      }
    }
  }
  EXPECT_GT(replayed, 0) << "no fuzz seeds or regressions found under " << SCOREFLOW_SOURCE_DIR;
}
