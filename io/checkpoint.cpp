#include "scoreflow/checkpoint.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/fsutil.h"
#include "scoreflow/error.h"

namespace scoreflow::io {
namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "scoreflow-chunks/1";
constexpr const char* kManifest = "manifest.json";

/// Values can be long (a grid of 1000 sigmas); the message shows a readable prefix.
std::string shorten(const std::string& v) { return v.size() > 80 ? v.substr(0, 77) + "..." : v; }

}  // namespace

void remove_stale_temporaries(const std::string& dir, const std::string& prefix) {
  std::error_code ec;
  for (const std::string& name : list_dir(dir)) {
    const fs::path entry = fs::path(dir) / name;
    const size_t at = name.rfind(".tmp.");
    if (name.rfind(prefix, 0) != 0 || at == std::string::npos) continue;
    long long pid = 0, n = 0;
    char tail = 0;
    if (std::sscanf(name.c_str() + at, ".tmp.%lld.%lld%c", &pid, &n, &tail) != 2 || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // its writer still runs
    fs::remove(entry, ec);
  }
}

ChunkStore::ChunkStore(std::string dir, Settings settings, bool overwrite, const std::string& option)
    : dir_(std::move(dir)), settings_(std::move(settings)) {
  std::error_code ec;
  if (!fs::exists(dir_, ec)) return;
  if (!fs::is_directory(dir_, ec))
    fail("cannot keep the chunks of ", Field{option.c_str()}, " in '", dir_, "': a file is in the way");
  const std::string manifest = dir_ + "/" + kManifest;
  if (overwrite || !fs::exists(manifest, ec)) {
    // --overwrite, or a writer killed before its first chunk landed: nothing worth keeping.
    if (std::string err = remove_tree(dir_); !err.empty()) fail("cannot clear '", dir_, "': ", err);
    return;
  }
  Settings old;
  try {
    const std::vector<uint8_t> bytes = read_file(manifest);
    const auto doc = nlohmann::json::parse(bytes.begin(), bytes.end());
    if (doc.at("format") != kFormat) fail("format ", doc.at("format").dump());
    for (const auto& item : doc.at("settings"))
      old.emplace_back(item.at(0).get<std::string>(), item.at(1).get<std::string>());
  } catch (const std::exception& e) {
    fail("'", manifest, "' is unreadable (", e.what(), "); ", Field{"overwrite"}, " discards the unfinished run in '",
         dir_, "'");
  }
  auto differ = [&](const std::string& name, const std::string& was, const std::string& now) {
    fail("'", dir_, "' holds an unfinished run of ", Field{option.c_str()}, " with different settings: ", name,
         " was '", shorten(was), "', now '", shorten(now),
         "'; re-run with the same settings to resume, or start over with ", Field{"overwrite"});
  };
  for (const auto& [name, value] : settings_) {
    auto it = std::find_if(old.begin(), old.end(), [&](const auto& p) { return p.first == name; });
    if (it == old.end()) differ(name, "(not set)", value);
    if (it->second != value) differ(name, it->second, value);
  }
  for (const auto& [name, value] : old)
    if (std::none_of(settings_.begin(), settings_.end(), [&](const auto& p) { return p.first == name; }))
      differ(name, value, "(not set)");
  manifest_written_ = true;
  // Temporary siblings of chunks whose writer was killed mid-write.
  for (const std::string& name : list_dir(dir_))
    if (name.find(".tmp.") != std::string::npos) fs::remove(fs::path(dir_) / name, ec);
}

std::vector<std::string> ChunkStore::chunks() const {
  std::vector<std::string> out;
  {
    std::lock_guard<std::mutex> guard(*lock_);
    if (!manifest_written_) return out;
  }
  for (const std::string& name : list_dir(dir_)) {
    const fs::path p(name);
    if (p.extension() == ".npy" && name.find(".tmp.") == std::string::npos) out.push_back(p.stem().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<NpyArray> ChunkStore::load(const std::string& name) const {
  {
    std::lock_guard<std::mutex> guard(*lock_);
    if (!manifest_written_) return std::nullopt;
  }
  try {
    NpyArray array = read_npy(dir_ + "/" + name + ".npy");
    std::lock_guard<std::mutex> guard(*lock_);
    ++loaded_;
    return array;
  } catch (const Error&) {
    return std::nullopt;  // written atomically, so only tampering gets here; redo the chunk
  }
}

void ChunkStore::save(const std::string& name, const NpyArray& array) {
  std::unique_lock<std::mutex> guard(*lock_);
  if (!manifest_written_) {
    make_dirs(dir_);
    nlohmann::json doc = {{"format", kFormat}, {"settings", nlohmann::json::array()}};
    for (const auto& [k, v] : settings_) doc["settings"].push_back({k, v});
    write_file_atomic(dir_ + "/" + kManifest, doc.dump(1) + "\n");
    manifest_written_ = true;
  }
  guard.unlock();  // chunks have their own names: several threads may write at once
  write_npy(dir_ + "/" + name + ".npy", array);
  // Test hook (tests/resume_eval_test.cpp): SCOREFLOW_TEST_KILL_AFTER_CHUNKS=k makes the process
  // SIGKILL itself right after its k-th chunk is stored — a kill -9 at a known point.
  static std::atomic<int> saved{0};  // chunks may be stored from several device threads
  if (const char* k = std::getenv("SCOREFLOW_TEST_KILL_AFTER_CHUNKS"); k && ++saved >= std::atoi(k)) ::raise(SIGKILL);
}

Memo ChunkStore::memo() {
  return [this](const std::string& name, const std::function<torch::Tensor()>& compute) {
    if (auto done = load(name)) return to_tensor(*done);
    torch::Tensor result = compute().to(torch::kCPU).contiguous();
    save(name, from_tensor(result));
    return result;
  };
}

torch::Tensor memoize(const Memo& memo, const std::string& name, const std::function<torch::Tensor()>& compute) {
  return memo ? memo(name, compute) : compute();
}

void ChunkStore::remove() {
  remove_tree(dir_);
  manifest_written_ = false;
}

}  // namespace scoreflow::io
