#pragma once
/// Seed lists: sample i's initial noise and every later draw for it come from a generator seeded
/// by seed i, so a list of seeds names a set of samples independently of batching (docs/design.md §8).
#include <cstdint>
#include <string>
#include <vector>

namespace scoreflow {

/// Parses "0-63", "1,5,9-12" into seeds (at most 10 million); throws Error naming the malformed
/// part (field `seeds`).
std::vector<uint64_t> parse_seeds(const std::string& text);

}  // namespace scoreflow
