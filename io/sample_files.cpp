// Sample files as rows (scoreflow/sample_files.h).
#include "scoreflow/sample_files.h"

#include <map>

#include "scoreflow/data.h"
#include "scoreflow/error.h"
#include "scoreflow/npy.h"

namespace scoreflow::io {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool is_float(const NpyArray& a) { return a.dtype == "<f4" || a.dtype == "<f8" || a.dtype == "<f2"; }

}  // namespace

torch::Tensor load_sample_rows(const std::string& path, double lo, double hi, int64_t limit) {
  torch::Tensor t;
  if (ends_with(path, ".npz") || ends_with(path, ".npy")) {
    std::map<std::string, NpyArray> arrays;
    if (ends_with(path, ".npy"))
      arrays["arr_0"] = read_npy(path);
    else
      arrays = read_npz(path);
    for (const char* key : {"samples", "arr_0", "data"}) {
      auto it = arrays.find(key);
      if (it != arrays.end() && is_float(it->second) && it->second.shape.size() != 4) {
        t = to_tensor(it->second).to(torch::kFloat32);  // points [N, d] (images go below)
        break;
      }
    }
    if (!t.defined()) {
      auto it = arrays.find("samples");
      if (it != arrays.end() && is_float(it->second)) t = to_tensor(it->second).to(torch::kFloat32);
    }
  }
  if (!t.defined()) {
    DatasetOptions opts;
    opts.lo = lo;
    opts.hi = hi;
    auto dataset = open_dataset(path, opts);
    const int64_t n = limit > 0 ? std::min(limit, dataset->size()) : dataset->size();
    t = dataset->batch(0, n);
  }
  if (t.dim() < 2) fail("'", path, "': expected samples [N, ...], got shape ", t.sizes());
  if (limit > 0 && t.size(0) > limit) t = t.narrow(0, 0, limit);
  return t;
}

}  // namespace scoreflow::io
