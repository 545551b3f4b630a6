#pragma once
/// Errors: every library failure is a scoreflow::Error whose message names the bad value (and,
/// for names, the valid choices). Only cli/ turns it into an `error:` line and an exit code.
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace scoreflow {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append(os, rest...);
}
}  // namespace detail

/// Builds a message from its parts: fail("steps must be >= 1, got ", n).
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  throw Error(os.str());
}

/// "a, b, c" — for listing valid choices in messages.
inline std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

}  // namespace scoreflow
