#pragma once
// Comma-separated list options ("euler,heun", "1,8,64"): the items, empty ones dropped.
#include <sstream>
#include <string>
#include <vector>

namespace scoreflow::cli {

inline std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::string item;
  std::stringstream ss(text);
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace scoreflow::cli
