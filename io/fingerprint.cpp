#include "scoreflow/fingerprint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "io/fsutil.h"

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
  uint64_t h = 0xcbf29ce484222325ull;
  read_file_chunks(path, [&](const uint8_t* data, size_t n) { h = fnv1a64(data, n, h); });
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
