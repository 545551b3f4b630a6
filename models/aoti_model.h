#pragma once
// torch.export / AOTInductor packages (`.pt2`, written by scripts/export_pt2.py) as σ-space models.
// Loading needs LibTorch >= 2.6 (torch::inductor::AOTIModelPackageLoader); other builds refuse.
#include <memory>
#include <string>
#include <vector>

#include "scoreflow/model.h"

namespace scoreflow {

/// True when this build can load `.pt2` packages (compiled against LibTorch >= 2.6).
bool aoti_available();

/// Opens the package at `path` (already known to be readable) on `device`. The metadata comes from
/// the package's own metadata entry "scoreflow.json", else from the sidecar `path`.json, then
/// `file_json` and `overrides` as in resolve_metadata. Throws Error naming the build it needs when
/// !aoti_available().
std::shared_ptr<Model> open_aoti_model(const std::string& path, const std::string& file_json,
                                       const std::vector<std::string>& overrides, torch::Device device);

}  // namespace scoreflow
