// Seed lists ("0-63", "1,5,9-12"): one sample per seed (docs/design.md §8).
#include "scoreflow/seeds.h"

#include <string>

#include "io/text.h"
#include "scoreflow/error.h"

namespace scoreflow {
using io::split;
using io::trim;

std::vector<uint64_t> parse_seeds(const std::string& text) {
  std::vector<uint64_t> seeds;
  auto parse_u = [&](const std::string& s) -> uint64_t {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 19)
      fail("malformed ", Field{"seeds"}, " '", text, "': '", s, "' is not a non-negative integer");
    return std::stoull(s);
  };
  if (trim(text).empty()) fail("malformed ", Field{"seeds"}, " '': give e.g. 0-63 or 1,5,9-12");
  for (const std::string& raw : split(text, ',')) {
    std::string item = trim(raw);
    size_t dash = item.find('-', 1);
    if (dash == std::string::npos) {
      seeds.push_back(parse_u(item));
      continue;
    }
    uint64_t lo = parse_u(trim(item.substr(0, dash))), hi = parse_u(trim(item.substr(dash + 1)));
    if (hi < lo) fail("malformed ", Field{"seeds"}, " '", text, "': range ", item, " is descending");
    if (hi - lo >= 10000000) fail("malformed ", Field{"seeds"}, " '", text, "': range ", item, " is too large");
    // Checked before expanding: thirty "0-9999999" items would otherwise take 2.4 GB first.
    if (seeds.size() + (hi - lo + 1) > 10000000)
      fail(Field{"seeds"}, " '", text, "' names more than 10 million samples");
    for (uint64_t s = lo; s <= hi; ++s) seeds.push_back(s);
  }
  if (seeds.size() > 10000000) fail(Field{"seeds"}, " '", text, "' names more than 10 million samples");
  return seeds;
}

}  // namespace scoreflow
