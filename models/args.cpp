#include "scoreflow/args.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>

#include "io/text.h"
#include "scoreflow/error.h"

namespace scoreflow {
namespace {

using io::split;
using io::trim;

double to_double(const std::string& text, const std::string& what) {
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(begin, &end);
  if (text.empty() || end != begin + text.size() || errno == ERANGE) fail(what, ": '", text, "' is not a number");
  return v;
}

}  // namespace

KeyValueArgs::KeyValueArgs(const std::string& text, const std::string& what) : what_(what) {
  if (trim(text).empty()) return;
  for (const std::string& raw : split(text, ',')) {
    std::string item = trim(raw);
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) fail("malformed ", what, " item '", item, "' (expected key=value)");
    values_[trim(item.substr(0, eq))] = trim(item.substr(eq + 1));
  }
}

const std::string* KeyValueArgs::find(const std::string& key) const {
  if (std::find(asked_.begin(), asked_.end(), key) == asked_.end()) asked_.push_back(key);
  auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

bool KeyValueArgs::has(const std::string& key) const { return find(key) != nullptr; }

double KeyValueArgs::get_double(const std::string& key, double fallback) const {
  const std::string* v = find(key);
  return v ? to_double(*v, what_ + " " + key) : fallback;
}

int KeyValueArgs::get_int(const std::string& key, int fallback) const {
  const std::string* v = find(key);
  if (!v) return fallback;
  double d = to_double(*v, what_ + " " + key);
  // Range first: casting a double outside int64 (e.g. limit=1e30) is undefined behaviour (found by fuzz_args).
  if (!(d >= -2e9 && d <= 2e9) || d != static_cast<double>(static_cast<int64_t>(d)))
    fail(what_, " ", key, ": '", *v, "' is not an integer");
  return static_cast<int>(d);
}

bool KeyValueArgs::get_bool(const std::string& key, bool fallback) const {
  const std::string* v = find(key);
  if (!v) return fallback;
  if (*v == "true" || *v == "1" || *v == "yes" || *v == "on") return true;
  if (*v == "false" || *v == "0" || *v == "no" || *v == "off") return false;
  fail(what_, " ", key, ": '", *v, "' is not a boolean (true/false)");
}

std::string KeyValueArgs::get_string(const std::string& key, const std::string& fallback) const {
  const std::string* v = find(key);
  return v ? *v : fallback;
}

std::vector<double> KeyValueArgs::get_list(const std::string& key, const std::vector<double>& fallback) const {
  const std::string* v = find(key);
  if (!v) return fallback;
  std::string text = *v;
  std::replace(text.begin(), text.end(), ':', 'x');
  std::vector<double> out;
  for (const std::string& item : split(text, 'x')) out.push_back(to_double(trim(item), what_ + " " + key));
  return out;
}

void KeyValueArgs::finish(const std::string& owner) const {
  for (const auto& [key, value] : values_) {
    if (std::find(asked_.begin(), asked_.end(), key) == asked_.end()) {
      std::vector<std::string> valid = asked_;
      std::sort(valid.begin(), valid.end());
      fail("unknown ", what_, " '", key, "' for ", owner,
           "; valid: ", valid.empty() ? std::string("(none)") : join(valid));
    }
  }
}

std::string KeyValueArgs::str() const {
  std::string out;
  for (const auto& [k, v] : values_) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out;
}

std::vector<double> parse_double_list(const std::string& text, const std::string& what) {
  std::vector<double> out;
  for (const std::string& item : split(text, ',')) out.push_back(to_double(trim(item), what));
  return out;
}

}  // namespace scoreflow
