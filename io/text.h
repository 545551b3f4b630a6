#pragma once
/// Splitting and trimming of the comma lists that flags and metadata strings carry ("0-63,70",
/// "k=2,shape=2"). Private to the library: not installed (docs/design.md §1).
#include <string>
#include <utility>
#include <vector>

namespace scoreflow::io {

/// `s` without leading and trailing blanks and tabs.
inline std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  const size_t e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

/// The pieces of `s` between separators, empty pieces kept ("a,,b" -> {"a", "", "b"}).
inline std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return out;
}

/// A comma-separated list ("euler,heun", "0,3,7"): its items, empty ones dropped.
inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  for (std::string& item : split(s, ','))
    if (!item.empty()) out.push_back(std::move(item));
  return out;
}

}  // namespace scoreflow::io
