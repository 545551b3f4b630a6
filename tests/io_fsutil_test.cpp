#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/fsutil.h"
#include "scoreflow/error.h"
#include "tests/support/io_test_util.h"

namespace scoreflow::io {
namespace {
using testing_io::expect_error;

class IoFs : public testing_io::TempDirTest {};

TEST_F(IoFs, AtomicWriteReplacesAndReadsBack) {
  const std::string file = path("out.bin");
  write_file_atomic(file, std::string("first version, longer"));
  write_file_atomic(file, std::string("second"));
  const std::vector<uint8_t> got = read_file(file);
  EXPECT_EQ(std::string(got.begin(), got.end()), "second");
  EXPECT_EQ(entries(), std::vector<std::string>{"out.bin"});  // no temporary left behind
}

TEST_F(IoFs, AtomicWriteIntoMissingDirNamesPathAndLeavesNothing) {
  const std::string file = path("missing/sub/out.bin");
  expect_error([&] { write_file_atomic(file, std::string("x")); }, {file});
  EXPECT_TRUE(entries().empty());
}

TEST_F(IoFs, AtomicWriteIntoReadOnlyDirNamesPathAndLeavesNothing) {
  // /proc refuses new files even to root; a chmod-ed directory covers ordinary users.
  expect_error([&] { write_file_atomic("/proc/scoreflow-test.bin", std::string("x")); }, {"/proc/scoreflow-test.bin"});
  const std::string ro = path("ro");
  make_dirs(ro);
  ::chmod(ro.c_str(), 0555);
  if (::geteuid() != 0) {
    expect_error([&] { write_file_atomic(ro + "/out.bin", std::string("x")); }, {ro + "/out.bin"});
    expect_error([&] { check_writable(ro + "/out.bin"); }, {ro});
  }
  EXPECT_TRUE(entries("ro").empty());
}

TEST_F(IoFs, UncommittedAtomicFileIsRemoved) {
  {
    AtomicFile f(path("big.npz"));
    f.write("partial", 7);
  }
  EXPECT_TRUE(entries().empty());
}

TEST_F(IoFs, ReadFileErrorsNameThePath) {
  expect_error([&] { read_file(path("nope.bin")); }, {path("nope.bin"), "cannot read"});
  expect_error([&] { read_file(dir_.string()); }, {dir_.string()});
}

TEST_F(IoFs, CheckWritableAndMakeDirs) {
  EXPECT_NO_THROW(check_writable(path("x.png")));
  EXPECT_NO_THROW(check_writable(dir_.string()));
  expect_error([&] { check_writable(path("no/such/x.png")); }, {path("no/such/x.png"), "does not exist"});
  make_dirs(path("a/b/c"));
  EXPECT_TRUE(std::filesystem::is_directory(path("a/b/c")));
  make_dirs(path("a/b/c"));  // idempotent
  write_file_atomic(path("file"), std::string("x"));
  expect_error([&] { make_dirs(path("file/sub")); }, {path("file/sub")});
  for (const std::string& name : entries()) EXPECT_EQ(name.find(".scoreflow-probe"), std::string::npos);
}

}  // namespace
}  // namespace scoreflow::io
