#include "scoreflow/fingerprint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "scoreflow/error.h"

namespace scoreflow::io {
namespace {

std::string hex(uint64_t h) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "fnv1a64:%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

uint64_t fnv1a64(const void* data, size_t size, uint64_t h) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

std::string hash_text(const std::string& text) { return hex(fnv1a64(text.data(), text.size())); }

std::string hash_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot read '", path, "': ", std::strerror(errno));
  uint64_t h = 0xcbf29ce484222325ull;
  uint8_t buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      fail("cannot read '", path, "': ", std::strerror(err));
    }
    h = fnv1a64(buf, static_cast<size_t>(n), h);
  }
  ::close(fd);
  return hex(h);
}

std::string path_fingerprint(const std::string& path) {
  if (path.empty()) return "(none)";
  if (path.rfind("builtin:", 0) == 0) return path;
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::vector<std::string> entries;
    for (const auto& e : fs::recursive_directory_iterator(path, ec))
      if (e.is_regular_file(ec))
        entries.push_back(fs::relative(e.path(), path, ec).string() + ":" + std::to_string(e.file_size(ec)));
    std::sort(entries.begin(), entries.end());
    std::string listing;
    for (const auto& e : entries) listing += e + "\n";
    return "folder " + hash_text(listing);
  }
  return hash_file(path);
}

}  // namespace scoreflow::io
