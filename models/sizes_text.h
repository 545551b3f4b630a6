#pragma once
// Tensor sizes in error messages.
#include <sstream>
#include <string>

namespace scoreflow {

/// Sizes as LibTorch prints them, "[2, 3, 4]" (c10::IntArrayRef, std::vector<int64_t>).
template <class Sizes>
std::string sizes_text(const Sizes& sizes) {
  std::ostringstream os;
  os << '[';
  const char* sep = "";
  for (const auto& v : sizes) os << sep << v, sep = ", ";
  os << ']';
  return os.str();
}

}  // namespace scoreflow
