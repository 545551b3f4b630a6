#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>

#include "io/prefetch.h"
#include "scoreflow/data.h"
#include "scoreflow/error.h"
#include "scoreflow/image.h"
#include "scoreflow/npy.h"
#include "tests/support/io_test_util.h"

namespace scoreflow::io {
namespace {
using testing_io::expect_error;

/// idx3 bytes: magic 0 0 8 3, big-endian N, H, W (as claimed), then `pixels`.
std::vector<uint8_t> idx_bytes(uint32_t n, uint32_t h, uint32_t w, const std::vector<uint8_t>& pixels) {
  std::vector<uint8_t> b = {0, 0, 8, 3};
  for (uint32_t v : {n, h, w})
    for (int s = 24; s >= 0; s -= 8) b.push_back((v >> s) & 0xff);
  b.insert(b.end(), pixels.begin(), pixels.end());
  return b;
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
  gzclose(f);
}

std::vector<uint8_t> ramp(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(i * 37 % 256);
  return v;
}

class IoIdx : public testing_io::TempDirTest {};

TEST_F(IoIdx, RawAndGzipOpenWithScaledValues) {
  const std::vector<uint8_t> pixels = ramp(3 * 2 * 4);
  testing_io::write_bytes(path("tiny-images-idx3-ubyte"), idx_bytes(3, 2, 4, pixels));
  write_gz(path("tiny-images-idx3-ubyte.gz"), idx_bytes(3, 2, 4, pixels));
  const torch::Tensor want =
      torch::tensor(std::vector<double>(pixels.begin(), pixels.end())).to(torch::kFloat).reshape({3, 1, 2, 4}) /
          255.0f * 2 -
      1;
  for (const std::string name : {"tiny-images-idx3-ubyte", "tiny-images-idx3-ubyte.gz"}) {
    const auto ds = open_dataset(path(name), {});
    EXPECT_EQ(ds->size(), 3) << name;
    EXPECT_EQ(ds->shape(), (std::vector<int64_t>{1, 2, 4})) << name;
    EXPECT_TRUE(ds->batch(0, 3).allclose(want)) << name;
    EXPECT_TRUE(ds->batch(1, 2).allclose(want.slice(0, 1, 3))) << name;
    EXPECT_NE(ds->describe().find("idx"), std::string::npos);
    expect_error([&] { ds->batch(2, 2); }, {path(name), "outside"});
  }
  DatasetOptions unit;
  unit.lo = 0, unit.hi = 1;
  EXPECT_FLOAT_EQ(open_dataset(path("tiny-images-idx3-ubyte"), unit)->batch(0, 1)[0][0][0][1].item<float>(),
                  37 / 255.0f);
}

TEST_F(IoIdx, TruncatedAndLyingHeadersAreErrors) {
  const std::vector<uint8_t> good = idx_bytes(3, 2, 4, ramp(24));
  testing_io::write_bytes(path("cut.idx"), {good.begin(), good.end() - 5});
  expect_error([&] { open_dataset(path("cut.idx"), {}); }, {path("cut.idx"), "truncated"});
  write_gz(path("cut.idx.gz"), {good.begin(), good.end() - 5});
  expect_error([&] { open_dataset(path("cut.idx.gz"), {}); }, {path("cut.idx.gz"), "truncated"});
  // A gzip stream cut in half (not just short data inside a complete stream).
  write_gz(path("whole.idx.gz"), idx_bytes(50, 28, 28, ramp(50 * 28 * 28)));
  const auto gz = testing_io::read_bytes(path("whole.idx.gz"));
  testing_io::write_bytes(path("halfgz.idx.gz"), {gz.begin(), gz.begin() + gz.size() / 2});
  expect_error([&] { open_dataset(path("halfgz.idx.gz"), {}); }, {path("halfgz.idx.gz")});
  // Header claims a million images (or 2^32-1 of 65535^2): refused, not allocated.
  testing_io::write_bytes(path("lie.idx"), idx_bytes(1000000, 28, 28, ramp(24)));
  expect_error([&] { open_dataset(path("lie.idx"), {}); }, {path("lie.idx"), "header"});
  write_gz(path("lie.idx.gz"), idx_bytes(0xffffffffu, 16384, 16384, ramp(24)));
  expect_error([&] { open_dataset(path("lie.idx.gz"), {}); }, {path("lie.idx.gz")});
  // Header claims fewer images than the file holds.
  testing_io::write_bytes(path("short.idx"), idx_bytes(2, 2, 4, ramp(24)));
  expect_error([&] { open_dataset(path("short.idx"), {}); }, {path("short.idx"), "after"});
  std::vector<uint8_t> labels = {0, 0, 8, 1, 0, 0, 0, 2, 7, 3};
  testing_io::write_bytes(path("labels.idx"), labels);
  expect_error([&] { open_dataset(path("labels.idx"), {}); }, {path("labels.idx"), "label"});
}

TEST(IoIdxFashion, OpensTestSetIfInstalled) {
  const std::string file = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  if (!std::filesystem::exists(file)) GTEST_SKIP() << file << " not installed";
  const auto ds = open_dataset(file, {});
  EXPECT_EQ(ds->size(), 10000);
  EXPECT_EQ(ds->shape(), (std::vector<int64_t>{1, 28, 28}));
  const torch::Tensor x = ds->batch(9900, 100);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{100, 1, 28, 28}));
  EXPECT_GE(x.min().item<float>(), -1.0f);
  EXPECT_LE(x.max().item<float>(), 1.0f);
  EXPECT_EQ(x.min().item<float>(), -1.0f);  // black background
  EXPECT_GT(x.std().item<float>(), 0.3f);   // real images, not a constant
}

class IoDataset : public testing_io::TempDirTest {
 protected:
  /// A constant-valued h x w x c PNG, so an item's identity is readable from its pixels.
  void png(const std::string& name, int value, int h = 4, int w = 4, int c = 3) {
    std::filesystem::create_directories(std::filesystem::path(path(name)).parent_path());
    write_png(path(name), torch::full({h, w, c}, value, torch::kByte));
  }
};

TEST_F(IoDataset, FolderIsRecursiveSortedAndIgnoresOtherFiles) {
  png("c.png", 40), png("b/2.png", 30), png("a/1.png", 20), png("0.png", 10);
  testing_io::write_bytes(path("notes.txt"), {'x'});
  testing_io::write_bytes(path("a/._1.png"), {'x'});  // macOS resource fork, not an image
  DatasetOptions unit;
  unit.lo = 0, unit.hi = 255;
  const auto ds = open_dataset(dir_.string(), unit);
  ASSERT_EQ(ds->size(), 4);
  EXPECT_EQ(ds->shape(), (std::vector<int64_t>{3, 4, 4}));
  const torch::Tensor x = ds->batch(0, 4);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(x[i].eq(10.0f * (i + 1)).all().item<bool>()) << i;
  EXPECT_EQ(ds->skipped(), 0);
}

TEST_F(IoDataset, FolderMixedShapesNameTheFileUnlessResized) {
  png("a.png", 10), png("b.png", 20), png("c.png", 30, 6, 8), png("d.png", 40, 2, 2);
  expect_error([&] { open_dataset(dir_.string(), {}); }, {path("c.png"), "6x8", "4x4", "mixed"});
  DatasetOptions want;
  want.shape = {3, 4, 4};
  expect_error([&] { open_dataset(dir_.string(), want); }, {path("c.png"), "3x6x8", "3x4x4"});
  want.resize = true;
  want.lo = 0, want.hi = 255;
  const auto ds = open_dataset(dir_.string(), want);
  const torch::Tensor x = ds->batch(0, 4);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{4, 3, 4, 4}));
  EXPECT_TRUE(x[2].sub(30).abs().max().item<float>() < 0.5f);  // a constant image stays constant
}

TEST_F(IoDataset, FolderBrokenFilesFailOrAreSkippedAndCounted) {
  png("a.png", 10), png("d.png", 40);
  testing_io::write_bytes(path("b.png"), {});
  const auto good = testing_io::read_bytes(path("a.png"));
  testing_io::write_bytes(path("c.png"), {good.begin(), good.begin() + good.size() / 2});
  expect_error([&] { open_dataset(dir_.string(), {}); }, {path("b.png"), "empty"});
  DatasetOptions skip;
  skip.skip_bad = true;
  const auto ds = open_dataset(dir_.string(), skip);
  EXPECT_EQ(ds->size(), 2);
  EXPECT_EQ(ds->skipped(), 2);
  EXPECT_NE(ds->describe().find("2 unreadable"), std::string::npos) << ds->describe();

  testing_io::TempDirTest::TearDown();
  testing_io::TempDirTest::SetUp();
  testing_io::write_bytes(path("only.png"), {});
  expect_error([&] { open_dataset(dir_.string(), skip); }, {dir_.string(), "skipped"});
  std::filesystem::remove(path("only.png"));
  expect_error([&] { open_dataset(dir_.string(), {}); }, {dir_.string(), "no .png"});
}

TEST_F(IoDataset, ChannelConversionsAreExplicit) {
  torch::Tensor rgb = torch::zeros({4, 4, 3}, torch::kByte);
  rgb.select(2, 0).fill_(200), rgb.select(2, 1).fill_(100), rgb.select(2, 2).fill_(50);
  write_png(path("rgb.png"), rgb);
  DatasetOptions grey;
  grey.shape = {1, 4, 4};
  grey.lo = 0, grey.hi = 255;
  const float lum = 0.299f * 200 + 0.587f * 100 + 0.114f * 50;
  EXPECT_NEAR(open_dataset(dir_.string(), grey)->batch(0, 1)[0][0][0][0].item<float>(), lum, 1.0f);

  // Arrays: grey idx served as RGB replicates; RGB uint8 NHWC served as grey uses luminance.
  testing_io::write_bytes(path("g.idx"), idx_bytes(1, 2, 2, {0, 85, 170, 255}));
  DatasetOptions to_rgb;
  to_rgb.shape = {3, 2, 2};
  const auto ds = open_dataset(path("g.idx"), to_rgb);
  const torch::Tensor x = ds->batch(0, 1);
  EXPECT_TRUE(x[0][0].equal(x[0][2]));
  EXPECT_NE(ds->describe().find("grey replicated to RGB"), std::string::npos) << ds->describe();
  write_npy(path("rgb.npy"), from_tensor(rgb.unsqueeze(0)));
  const auto g = open_dataset(path("rgb.npy"), grey);
  EXPECT_NEAR(g->batch(0, 1)[0][0][1][1].item<float>(), lum, 1e-3f);
  EXPECT_NE(g->describe().find("luminance"), std::string::npos) << g->describe();
  DatasetOptions two;
  two.shape = {2, 2, 2};
  expect_error([&] { open_dataset(path("g.idx"), two); }, {path("g.idx"), "channels"});
}

TEST_F(IoDataset, ArraysFollowTheLayoutRule) {
  const torch::Tensor nhwc = torch::randint(0, 256, {5, 6, 7, 3}).to(torch::kByte);
  const torch::Tensor want = from_uint8_nhwc(nhwc, -1, 1);
  write_npy(path("u8.npy"), from_tensor(nhwc));
  write_npz(path("s.npz"), {{"samples", from_tensor(want)}, {"images", from_tensor(nhwc)}});
  write_npz(path("nchw.npz"), {{"x", from_tensor(nhwc.permute({0, 3, 1, 2}).contiguous())}});
  write_npy(path("hw.npy"), from_tensor(nhwc.select(3, 0).contiguous()));
  for (const std::string name : {"u8.npy", "s.npz", "nchw.npz"}) {
    const auto ds = open_dataset(path(name), {});
    EXPECT_EQ(ds->shape(), (std::vector<int64_t>{3, 6, 7})) << name;
    EXPECT_TRUE(ds->batch(0, 5).allclose(want, 0, 1e-6)) << name;
  }
  EXPECT_NE(open_dataset(path("s.npz"), {})->describe().find("'images'"), std::string::npos);
  DatasetOptions samples;
  samples.key = "samples";
  const auto f = open_dataset(path("s.npz"), samples);  // float NCHW, used as it is
  EXPECT_TRUE(f->batch(0, 5).equal(want));
  EXPECT_NE(f->describe().find("float NCHW"), std::string::npos) << f->describe();
  EXPECT_EQ(open_dataset(path("hw.npy"), {})->shape(), (std::vector<int64_t>{1, 6, 7}));
  samples.key = "nope";
  expect_error([&] { open_dataset(path("s.npz"), samples); }, {path("s.npz"), "nope", "images, samples"});
  write_npy(path("i4.npy"), from_tensor(torch::zeros({2, 3, 4, 4}, torch::kInt)));
  expect_error([&] { open_dataset(path("i4.npy"), {}); }, {path("i4.npy"), "<i4"});
  write_npy(path("flat.npy"), from_tensor(torch::zeros({2, 10})));
  expect_error([&] { open_dataset(path("flat.npy"), {}); }, {path("flat.npy"), "2x10"});
}

TEST_F(IoDataset, ShapeMismatchRefusedUnlessResize) {
  write_npy(path("x.npy"), from_tensor(torch::full({2, 1, 8, 6}, 0.25f)));
  DatasetOptions want;
  want.shape = {1, 4, 4};
  expect_error([&] { open_dataset(path("x.npy"), want); }, {path("x.npy"), "1x8x6", "1x4x4", "resize"});
  want.resize = true;
  const auto ds = open_dataset(path("x.npy"), want);
  const torch::Tensor x = ds->batch(0, 2);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{2, 1, 4, 4}));
  EXPECT_TRUE(x.sub(0.25f).abs().max().item<float>() < 1e-4f);
  EXPECT_NE(ds->describe().find("centre-cropped from 8x6"), std::string::npos) << ds->describe();
}

TEST_F(IoDataset, UnknownOrMissingPathsAndBadOptions) {
  expect_error([&] { open_dataset(path("none"), {}); }, {path("none"), "does not exist"});
  testing_io::write_bytes(path("data.csv"), {'1'});
  expect_error([&] { open_dataset(path("data.csv"), {}); }, {path("data.csv"), "idx"});
  DatasetOptions bad;
  bad.lo = 1, bad.hi = 1;
  expect_error([&] { open_dataset(path("data.csv"), bad); }, {"hi > lo"});
  bad = {};
  bad.shape = {3, 32};
  expect_error([&] { open_dataset(path("data.csv"), bad); }, {"[C, H, W]"});
}

}  // namespace
TEST(RowPrefetcher, HandsOutTheBatchesInOrderAndRefusesOthers) {
  const torch::Tensor rows = torch::arange(7 * 3, torch::kFloat32).reshape({7, 3});
  RowPrefetcher p(rows, 3, torch::kCPU);
  ASSERT_EQ(p.batches(), 3);
  EXPECT_FALSE(p.overlapped());
  for (int64_t b = 0; b < 3; ++b) {
    EXPECT_EQ(p.batch_begin(b), 3 * b);
    EXPECT_EQ(p.batch_size(b), b < 2 ? 3 : 1);
    EXPECT_TRUE(torch::equal(p.get(b), rows.narrow(0, 3 * b, p.batch_size(b)))) << "batch " << b;
  }
  expect_error([&] { p.get(3); }, {"batch 3 is past the last batch 2"});
  RowPrefetcher q(rows, 2, torch::kCPU);
  expect_error([&] { q.get(1); }, {"batch 1 requested out of order (expected 0)"});
  expect_error([&] { RowPrefetcher(rows, 0, torch::kCPU); }, {"batch must be >= 1"});
}

}  // namespace scoreflow::io
