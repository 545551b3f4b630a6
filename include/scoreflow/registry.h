#pragma once
/// The sampler table: one line per sampler in samplers/registry.cpp.
#include <memory>
#include <string>
#include <vector>

#include "scoreflow/args.h"
#include "scoreflow/sampler.h"

namespace scoreflow {

struct SamplerInfo {
  std::string name;
  std::string summary;
  std::unique_ptr<Sampler> (*make)(const KeyValueArgs& args);
};

/// Every registered sampler, in table order.
const std::vector<SamplerInfo>& sampler_table();
/// Builds a sampler by name from "k=v,..." args. Throws Error listing the valid names for an
/// unknown one, and the valid args for an unknown arg.
std::unique_ptr<Sampler> make_sampler(const std::string& name, const std::string& args = "");

}  // namespace scoreflow
