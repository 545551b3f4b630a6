#include <gtest/gtest.h>
#include <zlib.h>

#include "scoreflow/error.h"
#include "scoreflow/image.h"
#include "tests/support/io_test_util.h"

namespace scoreflow::io {
namespace {
using testing_io::expect_error;

class IoImage : public testing_io::TempDirTest {};

TEST(IoImageConvert, Uint8RoundsHalfAwayAndClamps) {
  // In [-1, 1], 255 levels: x = 2*v/255 - 1 maps to v; v + 0.5 sits on a tie and rounds up.
  const torch::Tensor x =
      torch::tensor({-1.0, 1.0, 2.0 * 127.5 / 255 - 1, -3.0, 7.0, 2.0 * 10.49 / 255 - 1}, torch::kDouble)
          .reshape({1, 1, 1, 6});
  const torch::Tensor u = to_uint8_nhwc(x, -1, 1);
  EXPECT_EQ(u.sizes(), (std::vector<int64_t>{1, 1, 6, 1}));
  EXPECT_TRUE(u.flatten().equal(torch::tensor({0, 255, 128, 0, 255, 10}).to(torch::kByte)));
}

TEST(IoImageConvert, LayoutAndInverse) {
  const torch::Tensor u = torch::randint(0, 256, {2, 5, 4, 3}).to(torch::kByte);
  const torch::Tensor x = from_uint8_nhwc(u, -1, 1);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{2, 3, 5, 4}));
  // NEAR, not FLOAT_EQ: -O2 (the sanitizer build) rounds v*(2/255)-1 a few ulps off v/127.5-1.
  EXPECT_NEAR(x[1][2][3][1].item<float>(), u[1][3][1][2].item<uint8_t>() / 127.5f - 1, 1e-6);
  EXPECT_TRUE(to_uint8_nhwc(x, -1, 1).equal(u));
  expect_error([&] { to_uint8_nhwc(torch::zeros({1, 2, 3, 3}), -1, 1); }, {"channels"});
  expect_error([&] { from_uint8_nhwc(u, 1, -1); }, {"hi > lo"});
}

TEST(IoImageGrid, TilesPaddingAndEmptyCells) {
  // Five 2x3 tiles filled with 10, 20, ..., 50; three columns, padding 1 of value 200.
  const torch::Tensor tiles =
      (torch::arange(1, 6) * 10).to(torch::kByte).reshape({5, 1, 1, 1}).expand({5, 2, 3, 3}).contiguous();
  const torch::Tensor g = make_grid(tiles, 3, 1, 200);
  ASSERT_EQ(g.sizes(), (std::vector<int64_t>{2 * 2 + 1, 3 * 3 + 2, 3}));
  for (int64_t y = 0; y < g.size(0); ++y)
    for (int64_t x = 0; x < g.size(1); ++x) {
      const bool pad = y == 2 || x == 3 || x == 7;
      const int64_t tile = (y / 3) * 3 + x / 4;
      const int expected = pad || tile >= 5 ? 200 : int(10 * (tile + 1));
      ASSERT_EQ(g[y][x][1].item<uint8_t>(), expected) << "y=" << y << " x=" << x;
    }
  EXPECT_EQ(make_grid(tiles, 0, 0).sizes(), (std::vector<int64_t>{4, 9, 3}));   // ceil(sqrt(5)) = 3 columns
  EXPECT_EQ(make_grid(tiles, 8, 0).sizes(), (std::vector<int64_t>{2, 15, 3}));  // never empty columns
}

TEST_F(IoImage, PngRoundTripEveryChannelCount) {
  for (int c : {1, 3, 4}) {
    const torch::Tensor img = torch::randint(0, 256, {17, 23, c}).to(torch::kByte);
    const std::string file = path("img" + std::to_string(c) + ".png");
    write_png(file, img);
    EXPECT_TRUE(read_image(file).equal(img)) << c;
  }
  const torch::Tensor grey = read_image(path("img1.png"), 3);
  EXPECT_TRUE(grey.select(2, 0).equal(grey.select(2, 2)));  // grey replicated into RGB
  expect_error([&] { write_png(path("nodir/x.png"), torch::zeros({2, 2, 3}, torch::kByte)); }, {path("nodir/x.png")});
  expect_error([&] { write_png(path("bad.png"), torch::zeros({2, 2, 3})); }, {path("bad.png"), "uint8"});
}

/// A PNG that is only signature + IHDR: enough for stbi_info, with any claimed size.
std::vector<uint8_t> png_header(uint32_t w, uint32_t h) {
  std::vector<uint8_t> b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
  for (uint32_t v : {w, h})
    for (int s = 24; s >= 0; s -= 8) b.push_back((v >> s) & 0xff);
  for (uint8_t v : {8, 2, 0, 0, 0}) b.push_back(v);  // 8-bit RGB
  const uint32_t crc = crc32(0, b.data() + 12, 17);
  for (int s = 24; s >= 0; s -= 8) b.push_back((crc >> s) & 0xff);
  return b;
}

/// A 54-byte BMP header (BITMAPINFOHEADER, 24-bit) claiming w x h, with no pixels.
std::vector<uint8_t> bmp_header(int32_t w, int32_t h) {
  std::vector<uint8_t> b(54, 0);
  auto put = [&](size_t o, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[o + i] = (v >> (8 * i)) & 0xff;
  };
  b[0] = 'B', b[1] = 'M';
  put(2, 54), put(10, 54), put(14, 40), put(18, uint32_t(w)), put(22, uint32_t(h));
  b[26] = 1, b[28] = 24;
  return b;
}

TEST_F(IoImage, BrokenFilesFailNamingTheFile) {
  testing_io::write_bytes(path("empty.png"), {});
  expect_error([&] { read_image(path("empty.png")); }, {path("empty.png"), "empty"});
  expect_error([&] { read_image(path("missing.png")); }, {path("missing.png")});
  testing_io::write_bytes(path("text.png"), {'h', 'e', 'l', 'l', 'o'});
  expect_error([&] { read_image(path("text.png")); }, {path("text.png")});

  write_png(path("ok.png"), torch::randint(0, 256, {64, 64, 3}).to(torch::kByte));
  const auto png = testing_io::read_bytes(path("ok.png"));
  testing_io::write_bytes(path("cut.png"), {png.begin(), png.begin() + png.size() / 2});
  expect_error([&] { read_image(path("cut.png")); }, {path("cut.png")});
  // A chunk claiming 2^31 - 1 bytes in a tiny file: refused before stb allocates for it.
  std::vector<uint8_t> liar = png_header(59, 3);
  for (int v : {0x7f, 0xff, 0xff, 0xff, 0x49, 0x44, 0x41, 0x54, 0, 0, 0, 0})
    liar.push_back(static_cast<uint8_t>(v));  // len, "IDAT", crc
  testing_io::write_bytes(path("liar.png"), liar);
  expect_error([&] { read_image(path("liar.png")); },
               {path("liar.png"), "truncated PNG (chunk 'IDAT' claims 2147483647"});

  std::vector<uint8_t> bmp = bmp_header(8, 8);
  bmp.resize(54 + 8 * 8 * 3 / 2);  // half the pixel rows
  testing_io::write_bytes(path("cut.bmp"), bmp);
  expect_error([&] { read_image(path("cut.bmp")); }, {path("cut.bmp"), "truncated"});

  // An 8x8 grey (77) baseline JPEG written by Pillow 9.4 (quality 50); stb's own JPEG writer has
  // integer-shift UB that the sanitizer build rejects, so the bytes are embedded instead.
  const std::string hex =
      "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a181616183123251d"
      "283a333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064785c656763ffc0000b08000800080101"
      "1100ffc4001f0000010501010101010100000000000000000102030405060708090a0bffc400b51000020103030204030505"
      "04040000017d01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a"
      "25262728292a3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a8384858687"
      "88898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2"
      "e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100003f00c5afffd9";
  std::string jpg;
  for (size_t i = 0; i < hex.size(); i += 2) jpg += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  testing_io::write_bytes(path("ok.jpg"), {jpg.begin(), jpg.end()});
  const torch::Tensor decoded = read_image(path("ok.jpg"));
  EXPECT_EQ(decoded.sizes(), (std::vector<int64_t>{8, 8, 1}));
  EXPECT_LE((decoded.to(torch::kInt) - 77).abs().max().item<int>(), 1);
  // Losing the tail (end-of-image marker, last scan bytes): stb may decode it without complaint.
  testing_io::write_bytes(path("cut.jpg"), {jpg.begin(), jpg.end() - 3});
  expect_error([&] { read_image(path("cut.jpg")); }, {path("cut.jpg"), "truncated"});
}

TEST_F(IoImage, AbsurdDimensionsAreRefusedFromTheHeader) {
  // 20000 x 20000 x 3 would be a 1.2 GB allocation; the headers alone must be enough to refuse.
  testing_io::write_bytes(path("huge.png"), png_header(20000, 20000));
  expect_error([&] { read_image(path("huge.png")); }, {path("huge.png"), "20000x20000"});
  // Within stb's own 2^30-byte limit, so only our per-side and pixel-count limits stop these.
  testing_io::write_bytes(path("wide.png"), png_header(20000, 100));
  expect_error([&] { read_image(path("wide.png")); }, {path("wide.png"), "20000x100", "absurd"});
  testing_io::write_bytes(path("area.png"), png_header(16384, 16385));
  expect_error([&] { read_image(path("area.png")); }, {path("area.png"), "absurd"});
  testing_io::write_bytes(path("huge.bmp"), bmp_header(100000, 100000));
  expect_error([&] { read_image(path("huge.bmp")); }, {path("huge.bmp"), "absurd"});
  testing_io::write_bytes(path("big_area.bmp"), bmp_header(16384, 16384 + 0));  // 2^28 pixels: at the limit
  expect_error([&] { read_image(path("big_area.bmp")); }, {path("big_area.bmp"), "truncated"});
}

}  // namespace
}  // namespace scoreflow::io
