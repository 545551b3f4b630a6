#include "scoreflow/fingerprint.h"

#include <sys/stat.h>

#include <map>
#include <mutex>
#include <utility>

#include "scoreflow/error.h"
#include "scoreflow/model.h"

namespace scoreflow {

std::string model_fingerprint(const Model& model) {
  const std::string name = model.name();
  if (name.rfind("builtin:", 0) == 0) return io::hash_text(name + "\n" + model.metadata().json);
  struct stat st {};
  if (stat(name.c_str(), &st) != 0) fail("cannot fingerprint model file '", name, "' (not found)");
  // Hashing a large network takes a while and every resumable command asks: remembered per path
  // while the file's size and modification time stay the same.
  static std::mutex mutex;
  static std::map<std::string, std::pair<std::string, std::string>> cache;  // path -> (size:mtime, hash)
  const std::string stamp =
      std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(name);
    if (it != cache.end() && it->second.first == stamp) return it->second.second;
  }
  const std::string hash = io::hash_file(name);
  std::lock_guard<std::mutex> lock(mutex);
  cache[name] = {stamp, hash};
  return hash;
}

std::string seeds_fingerprint(const std::vector<uint64_t>& seeds) {
  std::string list;
  for (uint64_t s : seeds) list += std::to_string(s) + ",";
  return std::to_string(seeds.size()) + " seeds, " + io::hash_text(list);
}

}  // namespace scoreflow
