#include "models/cpu_optimize.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/version.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "scoreflow/checkpoint.h"
#include "scoreflow/cpu_fast_path.h"

namespace scoreflow {

std::string default_model_cache_dir() {
  for (const char* var : {"SCOREFLOW_CACHE_DIR", "XDG_CACHE_HOME", "HOME"}) {
    const char* value = std::getenv(var);
    if (!value || !*value) continue;
    const std::string base(value);
    if (std::string(var) == "SCOREFLOW_CACHE_DIR") return base;
    return base + (std::string(var) == "HOME" ? "/.cache/scoreflow" : "/scoreflow");
  }
  return "";
}

std::string cpu_cache_file(const std::string& dir, const std::string& content_hash,
                           const std::vector<std::string>& methods) {
  if (dir.empty() || dir == "none") return "";
  std::string key = std::string("libtorch ") + TORCH_VERSION + "; methods";
  for (const std::string& m : methods) key += " " + m;
  std::string tail = io::hash_text(key);
  tail = tail.substr(tail.find(':') + 1);
  std::string head = content_hash.substr(content_hash.find(':') + 1);
  return dir + "/" + head + "-" + tail + ".frozen.pt";
}

namespace {

bool has_methods(const torch::jit::Module& m, const std::vector<std::string>& methods) {
  for (const std::string& name : methods)
    if (!m.find_method(name)) return false;
  return true;
}

/// Writes `m` to `path` through a temporary name in the same folder, so that a reader never sees
/// half a file; any failure leaves no cache (the next load freezes again).
void save_quietly(const torch::jit::Module& m, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    m.save(tmp);
    fs::rename(tmp, path, ec);
    if (!ec) return;
  } catch (const std::exception&) {
  }
  fs::remove(tmp, ec);
}

}  // namespace

torch::jit::Module optimize_for_cpu(const torch::jit::Module& module, const std::vector<std::string>& methods,
                                    const std::string& cache_file, bool* cache_hit) {
  *cache_hit = false;
  torch::jit::Module frozen;
  if (!cache_file.empty() && std::filesystem::exists(cache_file)) {
    try {
      frozen = torch::jit::load(cache_file, torch::kCPU);
      *cache_hit = has_methods(frozen, methods);
    } catch (const std::exception&) {
    }
  }
  if (!*cache_hit) {
    std::vector<std::string> keep(methods.begin() + 1, methods.end());  // forward is always kept
    frozen = torch::jit::freeze(module, keep);
    if (!cache_file.empty()) save_quietly(frozen, cache_file);
  }
  // A frozen module has no `training` attribute, so optimize_for_inference does not freeze it again
  // (which would drop the kept methods).
  return torch::jit::optimize_for_inference(frozen, std::vector<std::string>(methods.begin() + 1, methods.end()));
}

}  // namespace scoreflow
