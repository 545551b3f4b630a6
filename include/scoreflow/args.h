#pragma once
/// "k=v,k2=v2" option lists (--sampler-args, --schedule-args, builtin:NAME:k=v). The consumer asks
/// for each key it understands; finish() then refuses any key nobody asked for, listing the valid
/// ones — so a typo never silently does nothing.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace scoreflow {

class KeyValueArgs {
 public:
  KeyValueArgs() = default;
  /// Parses "k=v,k2=v2" (empty string = no args). Throws Error on an item without '='.
  explicit KeyValueArgs(const std::string& text, const std::string& what = "args");

  bool has(const std::string& key) const;
  double get_double(const std::string& key, double fallback) const;
  int get_int(const std::string& key, int fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  /// Comma-free list separated by 'x' or ':' ("3x32x32").
  std::vector<double> get_list(const std::string& key, const std::vector<double>& fallback) const;
  void set(const std::string& key, const std::string& value) { values_[key] = value; }

  /// Throws Error("unknown <what> 'k' for <owner>; valid: a, b") for keys never asked for.
  void finish(const std::string& owner) const;
  const std::map<std::string, std::string>& values() const { return values_; }
  std::string str() const;

 private:
  const std::string* find(const std::string& key) const;
  std::string what_ = "args";
  std::map<std::string, std::string> values_;
  mutable std::vector<std::string> asked_;
};

/// Parses "80,40.5,1,0" into doubles; throws Error naming the malformed item.
std::vector<double> parse_double_list(const std::string& text, const std::string& what);

}  // namespace scoreflow
