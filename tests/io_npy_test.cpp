#include <gtest/gtest.h>

#include "io/npy_detail.h"
#include "scoreflow/error.h"
#include "scoreflow/npy.h"
#include "tests/support/io_test_util.h"

namespace scoreflow::io {
namespace {
using testing_io::expect_error;

/// One tensor per supported dtype with values that exercise sign, fraction and range.
std::vector<std::pair<std::string, torch::Tensor>> sample_tensors() {
  torch::manual_seed(7);
  return {
      {"f4", torch::randn({2, 3, 4})},
      {"f8", torch::randn({5}, torch::kDouble) * 1e10},
      {"f2", torch::randn({3, 2}).to(torch::kHalf)},
      {"u1", torch::randint(0, 256, {2, 4, 4, 3}).to(torch::kByte)},
      {"i1", torch::randint(-128, 128, {7}).to(torch::kChar)},
      {"i4", torch::randint(-100000, 100000, {3, 3}).to(torch::kInt)},
      {"i8", torch::tensor({-(int64_t(1) << 40), int64_t(3), int64_t(1) << 62})},  // not -1 << 40: UB before C++20
      {"b1", torch::tensor({true, false, true, true})},
      {"scalar", torch::tensor(2.5)},
      {"empty", torch::zeros({0, 3})},
  };
}

TEST(IoNpy, RoundTripEveryDtype) {
  for (const auto& [name, t] : sample_tensors()) {
    const NpyArray a = from_tensor(t);
    const std::string bytes = serialize_npy(a);
    const size_t header = bytes.size() - a.data.size();
    EXPECT_EQ(header % 64, 0u) << name;  // numpy aligns the data to 64 bytes
    const NpyArray b = parse_npy(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), name);
    EXPECT_EQ(b.dtype, a.dtype) << name;
    EXPECT_EQ(b.shape, a.shape) << name;
    const torch::Tensor back = to_tensor(b);
    EXPECT_EQ(back.scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(back.equal(t)) << name;
  }
}

std::string npy_with_header(const std::string& dict, const std::string& data) {
  std::string h = dict;
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01', out += '\x00', out += char(h.size() & 0xff), out += char(h.size() >> 8);
  return out + h + data;
}

NpyArray parse(const std::string& s) {
  return parse_npy(reinterpret_cast<const uint8_t*>(s.data()), s.size(), "test.npy");
}

TEST(IoNpy, RefusesWhatItCannotRepresent) {
  const std::string data(16, '\0');
  expect_error([&] { parse(npy_with_header("{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", data)); },
               {"test.npy", "big-endian"});
  expect_error([&] { parse(npy_with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", data)); },
               {"test.npy", "Fortran"});
  expect_error([&] { parse(npy_with_header("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", data)); },
               {"test.npy", "object"});
  expect_error([&] { parse(npy_with_header("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", data)); },
               {"test.npy", "'<c8'", "<f4"});
  expect_error([&] { parse(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", data)); },
               {"test.npy", "truncated"});
  expect_error([&] { parse("not a numpy file at all"); }, {"test.npy", "magic"});
  expect_error([&] { parse(npy_with_header("{'descr': '<f4', 'shape': (4,), }", data)); }, {"test.npy"});
  // Byte-order marks on 1-byte types are equivalent and accepted.
  EXPECT_EQ(parse(npy_with_header("{'descr': '<u1', 'fortran_order': False, 'shape': (4, 4), }", data)).dtype, "|u1");
}

class IoNpz : public testing_io::TempDirTest {};

TEST_F(IoNpz, WriteReadRoundTrip) {
  std::vector<std::pair<std::string, NpyArray>> arrays;
  for (const auto& [name, t] : sample_tensors()) arrays.emplace_back(name, from_tensor(t));
  write_npz(path("a.npz"), arrays);
  write_npy(path("a.npy"), arrays[0].second);
  const auto back = read_npz(path("a.npz"));
  ASSERT_EQ(back.size(), arrays.size());
  for (const auto& [name, t] : sample_tensors()) EXPECT_TRUE(to_tensor(back.at(name)).equal(t)) << name;
  EXPECT_TRUE(to_tensor(read_npy(path("a.npy"))).equal(sample_tensors()[0].second));
  expect_error([&] { write_npz(path("b.npz"), {arrays[0], arrays[0]}); }, {path("b.npz"), "twice"});
}

TEST_F(IoNpz, Zip64RecordsAreReadByUsAndNumpy) {
  const torch::Tensor t = torch::arange(1000, torch::kFloat);
  const NpyArray a = from_tensor(t);
  write_zip(path("z.npz"), {{"x.npy", npy_header(a), a.data.data(), a.data.size()}}, /*force_zip64=*/true);
  EXPECT_TRUE(to_tensor(read_npz(path("z.npz")).at("x")).equal(t));
  if (!testing_io::have_numpy()) GTEST_SKIP() << "no /usr/bin/python3 with numpy";
  std::string out;
  const int rc = testing_io::run_python(
      dir_.string(), "import sys, numpy as np\nz = np.load(sys.argv[1])\nassert (z['x'] == np.arange(1000)).all()\n",
      path("z.npz"), &out);
  EXPECT_EQ(rc, 0) << out;
}

TEST_F(IoNpz, NumpyLoadsWhatWeWrite) {
  if (!testing_io::have_numpy()) GTEST_SKIP() << "no /usr/bin/python3 with numpy";
  std::vector<std::pair<std::string, NpyArray>> arrays;
  for (const auto& [name, t] : sample_tensors()) arrays.emplace_back(name, from_tensor(t));
  write_npz(path("ours.npz"), arrays);
  // numpy checks dtypes, shapes and the values it can know; random ones are compared by sum below.
  const std::string script = R"(import sys, numpy as np
z = np.load(sys.argv[1])
assert sorted(z.files) == sorted(['f4','f8','f2','u1','i1','i4','i8','b1','scalar','empty']), z.files
want = {'f4': ('float32', (2,3,4)), 'f8': ('float64', (5,)), 'f2': ('float16', (3,2)), 'u1': ('uint8', (2,4,4,3)),
        'i1': ('int8', (7,)), 'i4': ('int32', (3,3)), 'i8': ('int64', (3,)), 'b1': ('bool', (4,)),
        'scalar': ('float32', ()), 'empty': ('float32', (0,3))}
for k, (dt, shape) in want.items():
    assert z[k].dtype == np.dtype(dt) and z[k].shape == shape, (k, z[k].dtype, z[k].shape)
assert z['i8'].tolist() == [-(1 << 40), 3, 1 << 62]
assert z['b1'].tolist() == [True, False, True, True]
assert z['scalar'] == 2.5
for k in want:
    print(k, float(np.asarray(z[k], dtype=np.float64).sum()))
)";
  std::string out;
  ASSERT_EQ(testing_io::run_python(dir_.string(), script, path("ours.npz"), &out), 0) << out;
  // The sums numpy printed must match ours, which ties the bytes to the values.
  for (const auto& [name, t] : sample_tensors()) {
    const double ours = t.to(torch::kDouble).sum().item<double>();
    const auto pos = out.find(name + " ");
    ASSERT_NE(pos, std::string::npos) << out;
    EXPECT_NEAR(std::stod(out.substr(pos + name.size() + 1)), ours, 1e-9 * (1 + std::abs(ours))) << name;
  }
}

TEST_F(IoNpz, ReadsNumpySavezCompressedAndStored) {
  if (!testing_io::have_numpy()) GTEST_SKIP() << "no /usr/bin/python3 with numpy";
  const std::string script = R"(import sys, numpy as np
d = sys.argv[1]
arrays = dict(f4=np.linspace(-1, 1, 60000, dtype=np.float32).reshape(100, 600),
              f8=np.arange(10, dtype=np.float64) / 3, f2=np.array([0.5, -2, 65504], dtype=np.float16),
              u1=(np.arange(3 * 32 * 32 * 3) % 251).astype(np.uint8).reshape(3, 32, 32, 3),
              i1=np.array([-128, 0, 127], dtype=np.int8), i4=np.array([[-7, 8]], dtype=np.int32),
              i8=np.array([1 << 50, -5], dtype=np.int64), b1=np.array([True, False]))
np.savez_compressed(d + '/c.npz', **arrays)
np.savez(d + '/s.npz', **arrays)
np.save(d + '/v.npy', arrays['u1'])
)";
  std::string out;
  ASSERT_EQ(testing_io::run_python(dir_.string(), script, dir_.string(), &out), 0) << out;
  for (const std::string file : {"c.npz", "s.npz"}) {
    const auto z = read_npz(path(file));
    ASSERT_EQ(z.size(), 8u) << file;
    // numpy and torch linspace may differ in the last float32 bit.
    EXPECT_TRUE(to_tensor(z.at("f4")).allclose(torch::linspace(-1, 1, 60000).reshape({100, 600}), 0, 1e-6)) << file;
    EXPECT_TRUE(to_tensor(z.at("f8")).equal(torch::arange(10, torch::kDouble) / 3)) << file;
    EXPECT_TRUE(to_tensor(z.at("f2")).equal(torch::tensor({0.5, -2.0, 65504.0}).to(torch::kHalf))) << file;
    const torch::Tensor u1 = (torch::arange(3 * 32 * 32 * 3) % 251).to(torch::kByte).reshape({3, 32, 32, 3});
    EXPECT_TRUE(to_tensor(z.at("u1")).equal(u1)) << file;
    EXPECT_TRUE(to_tensor(z.at("i1")).equal(torch::tensor({-128, 0, 127}).to(torch::kChar))) << file;
    EXPECT_TRUE(to_tensor(z.at("i4")).equal(torch::tensor({{-7, 8}}).to(torch::kInt))) << file;
    EXPECT_TRUE(to_tensor(z.at("i8")).equal(torch::tensor({int64_t(1) << 50, int64_t(-5)}))) << file;
    EXPECT_TRUE(to_tensor(z.at("b1")).equal(torch::tensor({true, false}))) << file;
    if (file == "c.npz") EXPECT_TRUE(to_tensor(read_npy(path("v.npy"))).equal(u1));
  }
}

TEST_F(IoNpz, CorruptArchivesFailNamingFileAndEntry) {
  const NpyArray a = from_tensor(torch::arange(4000, torch::kFloat));
  write_npz(path("ok.npz"), {{"x", a}});
  std::vector<uint8_t> bytes = testing_io::read_bytes(path("ok.npz"));
  std::vector<uint8_t> flipped = bytes;
  flipped[500] ^= 0x55;  // inside x.npy's data
  testing_io::write_bytes(path("flipped.npz"), flipped);
  expect_error([&] { read_npz(path("flipped.npz")); }, {path("flipped.npz"), "x.npy", "CRC"});
  testing_io::write_bytes(path("cut.npz"), std::vector<uint8_t>(bytes.begin(), bytes.begin() + bytes.size() / 2));
  expect_error([&] { read_npz(path("cut.npz")); }, {path("cut.npz")});
  testing_io::write_bytes(path("empty.npz"), {});
  expect_error([&] { read_npz(path("empty.npz")); }, {path("empty.npz")});
}

TEST_F(IoNpz, TruncatedDeflateMemberFails) {
  if (!testing_io::have_numpy()) GTEST_SKIP() << "no /usr/bin/python3 with numpy";
  // Rewrite the compressed size in the central directory to cut the deflate stream short.
  const std::string script = R"(import sys, zipfile, numpy as np
d = sys.argv[1]
np.savez_compressed(d + '/c.npz', a=np.random.default_rng(0).normal(size=20000))
b = bytearray(open(d + '/c.npz', 'rb').read())
cd = b.rfind(b'PK\x01\x02')
size = int.from_bytes(b[cd + 20:cd + 24], 'little')
b[cd + 20:cd + 24] = (size // 2).to_bytes(4, 'little')
open(d + '/t.npz', 'wb').write(b)
)";
  std::string out;
  ASSERT_EQ(testing_io::run_python(dir_.string(), script, dir_.string(), &out), 0) << out;
  EXPECT_EQ(read_npz(path("c.npz")).at("a").shape, std::vector<int64_t>{20000});
  expect_error([&] { read_npz(path("t.npz")); }, {path("t.npz"), "a.npy"});
}

}  // namespace
}  // namespace scoreflow::io
