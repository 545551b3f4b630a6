// Every output path is checked before any work (io::check_outputs): existing directories where a
// file is meant, missing or unwritable folders, two outputs that are the same file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "io/fsutil.h"
#include "scoreflow/error.h"
#include "tests/support/io_test_util.h"

namespace scoreflow::io {
namespace {
using testing_io::expect_error;

class OutputPaths : public testing_io::TempDirTest {};

TEST_F(OutputPaths, RefusedNamingTheFieldAndThePath) {
  std::filesystem::create_directories(path("dir"));
  std::ofstream(path("file.txt")) << "x";
  expect_error([&] { check_outputs({{"out", path("dir")}}); }, {"out '" + path("dir") + "': is a directory"});
  expect_error(
      [&] {
        check_outputs({{"npz", path("nowhere/s.npz")}});
      },
      {"npz '" + path("nowhere/s.npz") + "'", "does not exist"});
  expect_error(
      [&] {
        check_outputs({{"out_dir", path("file.txt"), true}});
      },
      {"out_dir '" + path("file.txt") + "': exists and is not a directory"});
  expect_error(
      [&] {
        check_outputs({{"out_dir", path("file.txt/sub"), true}});
      },
      {"out_dir '" + path("file.txt/sub") + "'", "is not a directory"});
  expect_error(
      [&] {
        check_outputs({{"out", path("a.png")}, {"npz", path("dir/../a.png")}});
      },
      {"out '" + path("a.png") + "' and npz '" + path("dir/../a.png") + "' are the same file"});
  std::filesystem::create_directory_symlink(path("dir"), path("link"));
  expect_error(
      [&] {
        check_outputs({{"csv", path("dir/r.csv")}, {"plot", path("link/r.csv")}});
      },
      {"csv '", "plot '", "are the same file"});
  expect_error([&] { check_outputs({{"out", path("dir")}, {"out_dir", path("dir"), true}}); }, {"is a directory"});
  expect_error(
      [&] {
        check_outputs({{"out_dir", path("d2"), true}, {"parts", path("d2/"), true}});
      },
      {"out_dir '" + path("d2") + "' and parts '" + path("d2/") + "' are the same path"});
  // Fine: empty paths, files inside a folder output, a folder to be created with its parents,
  // and nothing is left behind by the probes.
  EXPECT_NO_THROW(check_outputs({{"out", ""},
                                 {"out_dir", path("dir"), true},
                                 {"csv", path("dir/r.csv")},
                                 {"plot", path("file.txt")},
                                 {"out_dir", path("new/deeper"), true}}));
  EXPECT_FALSE(std::filesystem::exists(path("new")));
  EXPECT_TRUE(std::filesystem::is_empty(path("dir")));
}

}  // namespace
}  // namespace scoreflow::io

#ifdef SCOREFLOW_CLI_PATH
#include <chrono>

#include "tests/support/cli_run.h"

namespace scoreflow {
namespace {

TEST(OutputPathsCli, RefusedBeforeAnyWorkWithTheFlagNamed) {
  const std::string dir = testing_cli::tmp("outputs_dir");
  std::filesystem::create_directories(dir);
  const auto start = std::chrono::steady_clock::now();
  // 4096 seeds x 200 Heun steps would take minutes: the refusal comes first.
  testing_cli::expect_refused("sample --model builtin:gmm --steps 200 --seeds 0-4095 --out " + dir,
                              "--out '" + dir + "': is a directory");
  testing_cli::expect_refused(
      "sample --model builtin:gmm --steps 200 --seeds 0-4095 --out " + dir + "/a.png --npz " + dir + "/./a.png",
      "are the same file", dir + "/a.png");
  testing_cli::expect_refused("train-amed --model builtin:ring8 --steps 4 --out " + dir + "/p.pt --log " + dir,
                              "--log '" + dir + "': is a directory", dir + "/p.pt");
  testing_cli::expect_refused("compare --model builtin:ring8 --metric ode-error --out-dir " + dir + " --csv " + dir +
                                  "/x.csv --plot " + dir + "/x.csv",
                              "--csv '" + dir + "/x.csv' and --plot '" + dir + "/x.csv' are the same file");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 30);
}

}  // namespace
}  // namespace scoreflow
#endif
