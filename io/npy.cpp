/// .npy format, versions 1.0-3.0 (numpy/lib/format.py): magic "\x93NUMPY", version, header length
/// (u16 for 1.0, u32 for 2.0/3.0), a Python dict literal padded to a multiple of 64 bytes, data.
#include "scoreflow/npy.h"

#include <cctype>
#include <cstring>
#include <limits>

#include "io/fsutil.h"
#include "io/npy_detail.h"
#include "scoreflow/error.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "scoreflow's .npy code copies little-endian bytes as they are; port it for this host"
#endif

namespace scoreflow::io {
namespace {

const char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

struct DtypeInfo {
  const char* descr;
  size_t itemsize;
  torch::ScalarType scalar;
  const char* name;  ///< numpy's name
};
const DtypeInfo kDtypes[] = {
    {"<f4", 4, torch::kFloat, "float32"}, {"<f8", 8, torch::kDouble, "float64"}, {"<f2", 2, torch::kHalf, "float16"},
    {"|u1", 1, torch::kByte, "uint8"},    {"|i1", 1, torch::kChar, "int8"},      {"<i4", 4, torch::kInt, "int32"},
    {"<i8", 8, torch::kLong, "int64"},    {"|b1", 1, torch::kBool, "bool"},
};

std::string supported_list() {
  std::vector<std::string> names;
  for (const auto& d : kDtypes) names.push_back(d.descr);
  return join(names);
}

const DtypeInfo* find_dtype(const std::string& descr) {
  for (const auto& d : kDtypes)
    if (descr == d.descr) return &d;
  return nullptr;
}

/// Cursor over the header dict literal, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& what) : s_(text), what_(what) {}

  void skip_space() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool accept(char c) {
    skip_space();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  void expect(char c) {
    if (!accept(c)) bad(std::string("expected '") + c + "'");
  }
  std::string string_literal() {
    skip_space();
    if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"')) bad("expected a string");
    const char quote = s_[i_++];
    const size_t end = s_.find(quote, i_);
    if (end == std::string::npos) bad("unterminated string");
    std::string out = s_.substr(i_, end - i_);
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    skip_space();
    for (const auto& [word, value] : {std::pair<const char*, bool>{"True", true}, {"False", false}})
      if (s_.compare(i_, std::strlen(word), word) == 0) return i_ += std::strlen(word), value;
    bad("expected True or False");
  }
  std::vector<int64_t> int_tuple() {
    expect('(');
    std::vector<int64_t> out;
    while (!accept(')')) {
      skip_space();
      size_t start = i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
      if (start == i_ || i_ - start > 18) bad("expected a dimension");
      out.push_back(std::stoll(s_.substr(start, i_ - start)));
      if (!accept(',')) {
        expect(')');
        break;
      }
    }
    return out;
  }
  /// Structured dtypes are lists; we refuse them by name rather than as a parse error.
  bool at(char c) {
    skip_space();
    return i_ < s_.size() && s_[i_] == c;
  }
  [[noreturn]] void bad(const std::string& problem) const {
    fail("'", what_, "': malformed .npy header (", problem, " at offset ", i_, "): ", s_);
  }

 private:
  const std::string& s_;
  const std::string& what_;
  size_t i_ = 0;
};

std::string canonical_descr(std::string descr, const std::string& what) {
  // 1-byte types have no byte order; numpy writes '|' but '<', '>', '=' are equivalent.
  if (descr.size() == 3 && descr[2] == '1' && std::strchr("<>=|", descr[0])) descr[0] = '|';
  if (descr.size() >= 2 && descr[0] == '=') descr[0] = '<';  // native order on a little-endian host
  if (find_dtype(descr)) return descr;
  if (descr.find('O') != std::string::npos)
    fail("'", what, "': object arrays (dtype '", descr, "') cannot be read without Python; save a ", "numeric array");
  if (!descr.empty() && descr[0] == '>')
    fail("'", what, "': big-endian dtype '", descr, "' is not supported; convert with ",
         "arr.astype(arr.dtype.newbyteorder('<'))");
  fail("'", what, "': unsupported dtype '", descr, "' (supported: ", supported_list(), ")");
}

}  // namespace

std::string numpy_dtype_name(torch::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.scalar == t) return d.name;
  return t == torch::kShort ? "int16" : c10::toString(t);
}

size_t npy_itemsize(const std::string& dtype, const std::string& what) {
  const DtypeInfo* d = find_dtype(dtype);
  if (!d) fail("'", what, "': unsupported dtype '", dtype, "' (supported: ", supported_list(), ")");
  return d->itemsize;
}

uint64_t npy_element_count(const std::vector<int64_t>& shape, const std::string& what) {
  uint64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0) fail("'", what, "': negative dimension ", dim);
    if (dim != 0 && count > std::numeric_limits<uint64_t>::max() / 16 / static_cast<uint64_t>(dim))
      fail("'", what, "': shape is absurdly large");
    count *= static_cast<uint64_t>(dim);
  }
  return count;
}

std::string npy_header(const NpyArray& array) {
  std::string shape = "(";
  for (size_t i = 0; i < array.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(array.shape[i]);
  if (array.shape.size() == 1) shape += ",";
  shape += ")";
  std::string dict = "{'descr': '" + array.dtype + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces and a final newline so that the data starts 64-byte aligned, as numpy does.
  // Version 2.0 only when the padded dict outgrows 1.0's u16 length field (huge ndim).
  const bool v2 = dict.size() + 64 > 65535;
  const size_t prefix = kMagicLen + 2 + (v2 ? 4 : 2);
  const size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict += '\n';
  std::string out(kMagic, kMagicLen);
  out += static_cast<char>(v2 ? 2 : 1);
  out += '\0';
  const uint32_t len = static_cast<uint32_t>(dict.size());
  for (size_t b = 0; b < (v2 ? 4u : 2u); ++b) out += static_cast<char>((len >> (8 * b)) & 0xff);
  return out + dict;
}

NpyArray parse_npy(const uint8_t* data, size_t size, const std::string& what) {
  if (size < kMagicLen + 4 || std::memcmp(data, kMagic, kMagicLen) != 0)
    fail("'", what, "' is not a .npy file (missing \\x93NUMPY magic)");
  const int major = data[6];
  if (major < 1 || major > 3) fail("'", what, "': unsupported .npy version ", major, ".", int(data[7]));
  size_t header_len = data[8] | (size_t(data[9]) << 8);
  size_t offset = 10;
  if (major >= 2) {
    if (size < 12) fail("'", what, "': truncated .npy header");
    header_len |= (size_t(data[10]) << 16) | (size_t(data[11]) << 24);
    offset = 12;
  }
  if (header_len > size - offset) fail("'", what, "': truncated .npy header");
  const std::string header(reinterpret_cast<const char*>(data + offset), header_len);
  offset += header_len;

  NpyArray array;
  bool have_descr = false, have_order = false, have_shape = false, fortran = false;
  HeaderParser p(header, what);
  p.expect('{');
  while (!p.accept('}')) {
    const std::string key = p.string_literal();
    p.expect(':');
    if (key == "descr") {
      if (p.at('[')) fail("'", what, "': structured dtypes are not supported");
      array.dtype = canonical_descr(p.string_literal(), what);
      have_descr = true;
    } else if (key == "fortran_order") {
      fortran = p.boolean();
      have_order = true;
    } else if (key == "shape") {
      array.shape = p.int_tuple();
      have_shape = true;
    } else {
      p.bad("unknown key '" + key + "'");
    }
    if (!p.accept(',')) {
      p.expect('}');
      break;
    }
  }
  if (!have_descr || !have_order || !have_shape) p.bad("missing descr, fortran_order or shape");
  if (fortran) fail("'", what, "': Fortran-order arrays are not supported; save np.ascontiguousarray(arr)");

  const uint64_t bytes = npy_element_count(array.shape, what) * npy_itemsize(array.dtype, what);
  if (bytes > size - offset)
    fail("'", what, "': truncated .npy data (header promises ", bytes, " bytes, ", size - offset, " present)");
  array.data.assign(data + offset, data + offset + bytes);
  return array;
}

std::string serialize_npy(const NpyArray& array) {
  const std::string what = "serialize_npy";
  const uint64_t bytes = npy_element_count(array.shape, what) * npy_itemsize(array.dtype, what);
  if (bytes != array.data.size())
    fail("serialize_npy: shape and dtype ", array.dtype, " need ", bytes, " bytes, data has ", array.data.size());
  std::string out = npy_header(array);
  out.append(reinterpret_cast<const char*>(array.data.data()), array.data.size());
  return out;
}

NpyArray read_npy(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  return parse_npy(bytes.data(), bytes.size(), path);
}

void write_npy(const std::string& path, const NpyArray& array) {
  const uint64_t bytes = npy_element_count(array.shape, path) * npy_itemsize(array.dtype, path);
  if (bytes != array.data.size())
    fail("cannot write '", path, "': shape and dtype ", array.dtype, " need ", bytes, " bytes, data has ",
         array.data.size());
  AtomicFile file(path);
  const std::string header = npy_header(array);
  file.write(header.data(), header.size());
  file.write(array.data.data(), array.data.size());
  file.commit();
}

torch::Tensor to_tensor(const NpyArray& array) {
  const DtypeInfo* d = find_dtype(array.dtype);
  if (!d) fail("to_tensor: unsupported dtype '", array.dtype, "' (supported: ", supported_list(), ")");
  const uint64_t bytes = npy_element_count(array.shape, "to_tensor") * d->itemsize;
  if (bytes != array.data.size())
    fail("to_tensor: shape and dtype ", array.dtype, " need ", bytes, " bytes, data has ", array.data.size());
  // Bools are copied as bytes and normalised: a byte other than 0/1 in a torch bool is undefined.
  const auto storage_type = d->scalar == torch::kBool ? torch::kByte : d->scalar;
  torch::Tensor t = torch::empty(array.shape, torch::TensorOptions().dtype(storage_type));
  if (bytes) std::memcpy(t.data_ptr(), array.data.data(), bytes);
  return d->scalar == torch::kBool ? t.ne(0) : t;
}

NpyArray from_tensor(const torch::Tensor& tensor) {
  const DtypeInfo* d = nullptr;
  for (const auto& candidate : kDtypes)
    if (candidate.scalar == tensor.scalar_type()) d = &candidate;
  if (!d)
    fail("from_tensor: unsupported tensor dtype ", tensor.scalar_type(),
         " (supported: float32, float64, float16, uint8, int8, int32, int64, bool)");
  const torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
  NpyArray array;
  array.dtype = d->descr;
  array.shape.assign(t.sizes().begin(), t.sizes().end());
  const size_t bytes = static_cast<size_t>(t.numel()) * d->itemsize;
  array.data.resize(bytes);
  if (bytes) std::memcpy(array.data.data(), t.data_ptr(), bytes);
  return array;
}

}  // namespace scoreflow::io
