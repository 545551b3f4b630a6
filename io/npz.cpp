/// .npz = ZIP archive of .npy members (numpy.savez / savez_compressed). The reader follows the
/// central directory (APPNOTE 4.3.12), handles stored and deflate members and zip64 records; the
/// writer stores members uncompressed with correct CRC-32s, switching to zip64 above 4 GiB.
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "io/fsutil.h"
#include "io/npy_detail.h"
#include "scoreflow/error.h"
#include "scoreflow/npy.h"

namespace scoreflow::io {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50;
constexpr uint32_t kMax32 = 0xffffffffu;
constexpr uint16_t kMax16 = 0xffff;

/// Bounds-checked little-endian reads over the archive bytes.
class Reader {
 public:
  Reader(const std::vector<uint8_t>& bytes, const std::string& path) : b_(bytes), path_(path) {}
  void need(uint64_t offset, uint64_t len, const char* what) const {
    if (offset > b_.size() || len > b_.size() - offset)
      fail("'", path_, "': broken .npz (", what, " runs past the end of the file)");
  }
  uint64_t le(uint64_t offset, int nbytes, const char* what) const {
    need(offset, nbytes, what);
    uint64_t v = 0;
    for (int i = nbytes - 1; i >= 0; --i) v = (v << 8) | b_[offset + i];
    return v;
  }
  const uint8_t* at(uint64_t offset) const { return b_.data() + offset; }
  size_t size() const { return b_.size(); }

 private:
  const std::vector<uint8_t>& b_;
  const std::string& path_;
};

struct Directory {
  uint64_t entries = 0, offset = 0;
};

Directory find_directory(const Reader& r, const std::string& path) {
  if (r.size() < 22) fail("'", path, "' is not a .npz/zip archive (too short)");
  // The end record sits in the last 22 + (comment <= 65535) bytes; scan backwards for it.
  const uint64_t lowest = r.size() > 22 + 65535 ? r.size() - 22 - 65535 : 0;
  for (uint64_t pos = r.size() - 22 + 1; pos-- > lowest;) {
    if (r.le(pos, 4, "end record") != kEndSig) continue;
    Directory d{r.le(pos + 10, 2, "end record"), r.le(pos + 16, 4, "end record")};
    if (pos >= 20 && r.le(pos - 20, 4, "zip64 locator") == kLocator64Sig) {
      const uint64_t end64 = r.le(pos - 20 + 8, 8, "zip64 locator");
      if (r.le(end64, 4, "zip64 end record") != kEnd64Sig) fail("'", path, "': broken .npz (bad zip64 end record)");
      d.entries = r.le(end64 + 32, 8, "zip64 end record");
      d.offset = r.le(end64 + 48, 8, "zip64 end record");
    }
    return d;
  }
  fail("'", path, "' is not a .npz/zip archive (no end-of-central-directory record)");
}

std::vector<uint8_t> inflate_raw(const uint8_t* src, uint64_t csize, uint64_t usize, const std::string& where) {
  // Deflate cannot expand data more than ~1032:1; a larger claim is a lie, not a reason to
  // allocate gigabytes.
  if (usize > csize * 1032 + 1024) fail(where, ": uncompressed size ", usize, " is impossible");
  std::vector<uint8_t> out(usize);
  uint8_t dummy = 0;  // zlib refuses a null next_out even for an empty member
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) fail(where, ": zlib inflateInit2 failed");
  zs.next_in = const_cast<uint8_t*>(src);
  zs.next_out = usize ? out.data() : &dummy;
  uint64_t in_left = csize, out_left = usize;
  const uint64_t cap = std::numeric_limits<uInt>::max();  // zlib counts in 32-bit uInt
  int rc = Z_OK;
  for (;;) {
    if (zs.avail_in == 0 && in_left) zs.avail_in = static_cast<uInt>(std::min(in_left, cap)), in_left -= zs.avail_in;
    if (zs.avail_out == 0 && out_left)
      zs.avail_out = static_cast<uInt>(std::min(out_left, cap)), out_left -= zs.avail_out;
    rc = inflate(&zs, Z_NO_FLUSH);
    // Z_BUF_ERROR: input exhausted (truncated) or output full (larger than the directory says).
    if (rc != Z_OK) break;
  }
  const uint64_t produced = zs.total_out;
  const std::string msg = zs.msg ? zs.msg : "";
  inflateEnd(&zs);
  if (rc != Z_STREAM_END)
    fail(where, ": corrupt deflate data", msg.empty() ? std::string(" (truncated?)") : ": " + msg);
  if (produced != usize) fail(where, ": inflated to ", produced, " bytes, directory says ", usize);
  return out;
}

uint32_t crc_of(const uint8_t* data, uint64_t size) { return static_cast<uint32_t>(crc32_z(0, data, size)); }

}  // namespace

std::map<std::string, NpyArray> read_npz(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  const Reader r(bytes, path);
  const Directory dir = find_directory(r, path);
  std::map<std::string, NpyArray> arrays;
  uint64_t pos = dir.offset;
  for (uint64_t i = 0; i < dir.entries; ++i) {
    if (r.le(pos, 4, "central directory") != kCentralSig)
      fail("'", path, "': broken .npz (bad central directory entry ", i, ")");
    const uint64_t flags = r.le(pos + 8, 2, "central directory");
    const uint64_t method = r.le(pos + 10, 2, "central directory");
    const uint32_t crc = static_cast<uint32_t>(r.le(pos + 16, 4, "central directory"));
    uint64_t csize = r.le(pos + 20, 4, "central directory");
    uint64_t usize = r.le(pos + 24, 4, "central directory");
    const uint64_t name_len = r.le(pos + 28, 2, "central directory");
    const uint64_t extra_len = r.le(pos + 30, 2, "central directory");
    const uint64_t comment_len = r.le(pos + 32, 2, "central directory");
    uint64_t local = r.le(pos + 42, 4, "central directory");
    r.need(pos + 46, name_len + extra_len + comment_len, "central directory");
    const std::string name(reinterpret_cast<const char*>(r.at(pos + 46)), name_len);
    // zip64 extra field: 64-bit values for exactly those fields saturated at 0xffffffff, in order.
    for (uint64_t e = pos + 46 + name_len; e + 4 <= pos + 46 + name_len + extra_len;) {
      const uint64_t id = r.le(e, 2, "extra field"), len = r.le(e + 2, 2, "extra field");
      if (id == 0x0001) {
        uint64_t f = e + 4;
        if (usize == kMax32) usize = r.le(f, 8, "zip64 extra"), f += 8;
        if (csize == kMax32) csize = r.le(f, 8, "zip64 extra"), f += 8;
        if (local == kMax32) local = r.le(f, 8, "zip64 extra"), f += 8;
      }
      e += 4 + len;
    }
    pos += 46 + name_len + extra_len + comment_len;

    const std::string where = "'" + path + "': entry '" + name + "'";
    if (name.empty() || name.back() == '/') continue;  // directories
    if (flags & 1) fail(where, " is encrypted");
    if (r.le(local, 4, "local header") != kLocalSig) fail(where, ": bad local header");
    const uint64_t data_start = local + 30 + r.le(local + 26, 2, "local header") + r.le(local + 28, 2, "local header");
    r.need(data_start, csize, "member data");
    std::vector<uint8_t> member;
    if (method == 0) {
      if (csize != usize) fail(where, ": stored sizes disagree (", csize, " vs ", usize, ")");
      member.assign(r.at(data_start), r.at(data_start) + usize);
    } else if (method == 8) {
      member = inflate_raw(r.at(data_start), csize, usize, where);
    } else {
      fail(where, ": compression method ", method, " is not supported (only stored and deflate)");
    }
    if (crc_of(member.data(), member.size()) != crc) fail(where, ": CRC-32 mismatch (corrupt archive)");

    const std::string suffix = ".npy";
    if (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;  // numpy.load exposes non-.npy members as raw bytes; there is no array to return
    const std::string key = name.substr(0, name.size() - suffix.size());
    if (arrays.count(key)) fail(where, ": duplicate member");
    arrays.emplace(key, parse_npy(member.data(), member.size(), path + ":" + name));
  }
  return arrays;
}

void write_zip(const std::string& path, const std::vector<ZipMember>& members, bool force_zip64) {
  std::string central;
  AtomicFile file(path);
  uint64_t offset = 0;
  auto put = [](std::string& s, uint64_t v, int nbytes) {
    for (int i = 0; i < nbytes; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  for (const ZipMember& m : members) {
    const uint64_t size = m.head.size() + m.data_size;
    uint32_t crc = static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const uint8_t*>(m.head.data()), m.head.size()));
    if (m.data_size) crc = static_cast<uint32_t>(crc32_z(crc, m.data, m.data_size));
    const bool big = force_zip64 || size >= kMax32 || offset >= kMax32;
    const uint16_t version = big ? 45 : 20;
    const uint16_t dos_date = (0 << 9) | (1 << 5) | 1;  // 1980-01-01: reproducible archives

    std::string local;
    put(local, kLocalSig, 4), put(local, version, 2), put(local, 0, 2), put(local, 0, 2);
    put(local, 0, 2), put(local, dos_date, 2), put(local, crc, 4);
    put(local, big ? kMax32 : size, 4), put(local, big ? kMax32 : size, 4);
    put(local, m.name.size(), 2), put(local, big ? 20 : 0, 2);
    local += m.name;
    if (big) put(local, 0x0001, 2), put(local, 16, 2), put(local, size, 8), put(local, size, 8);

    put(central, kCentralSig, 4), put(central, version, 2), put(central, version, 2);
    put(central, 0, 2), put(central, 0, 2), put(central, 0, 2), put(central, dos_date, 2);
    put(central, crc, 4), put(central, big ? kMax32 : size, 4), put(central, big ? kMax32 : size, 4);
    put(central, m.name.size(), 2), put(central, big ? 28 : 0, 2), put(central, 0, 2);
    put(central, 0, 2), put(central, 0, 2), put(central, 0644u << 16, 4);
    put(central, big ? kMax32 : offset, 4);
    central += m.name;
    if (big)
      put(central, 0x0001, 2), put(central, 24, 2), put(central, size, 8), put(central, size, 8),
          put(central, offset, 8);

    file.write(local.data(), local.size());
    file.write(m.head.data(), m.head.size());
    if (m.data_size) file.write(m.data, m.data_size);
    offset += local.size() + size;
  }
  const uint64_t n = members.size();
  const bool big = force_zip64 || n >= kMax16 || offset >= kMax32 || central.size() >= kMax32;
  std::string tail = central;
  if (big) {
    const uint64_t end64 = offset + central.size();
    put(tail, kEnd64Sig, 4), put(tail, 44, 8), put(tail, 45, 2), put(tail, 45, 2);
    put(tail, 0, 4), put(tail, 0, 4), put(tail, n, 8), put(tail, n, 8);
    put(tail, central.size(), 8), put(tail, offset, 8);
    put(tail, kLocator64Sig, 4), put(tail, 0, 4), put(tail, end64, 8), put(tail, 1, 4);
  }
  put(tail, kEndSig, 4), put(tail, 0, 2), put(tail, 0, 2);
  put(tail, big ? kMax16 : n, 2), put(tail, big ? kMax16 : n, 2);
  put(tail, big ? kMax32 : central.size(), 4), put(tail, big ? kMax32 : offset, 4), put(tail, 0, 2);
  file.write(tail.data(), tail.size());
  file.commit();
}

void write_npz(const std::string& path, const std::vector<std::pair<std::string, NpyArray>>& arrays) {
  std::vector<ZipMember> members;
  for (const auto& [key, array] : arrays) {
    if (key.empty()) fail("cannot write '", path, "': empty array name");
    for (const auto& m : members)
      if (m.name == key + ".npy") fail("cannot write '", path, "': array name '", key, "' used twice");
    const std::string what = path + ":" + key;
    const uint64_t bytes = npy_element_count(array.shape, what) * npy_itemsize(array.dtype, what);
    if (bytes != array.data.size())
      fail("cannot write '", path, "': array '", key, "' needs ", bytes, " bytes for its shape, has ",
           array.data.size());
    members.push_back({key + ".npy", npy_header(array), array.data.data(), array.data.size()});
  }
  write_zip(path, members, false);
}

}  // namespace scoreflow::io
