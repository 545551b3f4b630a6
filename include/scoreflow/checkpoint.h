#pragma once
/// Resumable jobs: a long job keeps each finished chunk of its work in a folder next to its output,
/// with a manifest of the settings that produced them. Re-running the same command after a kill
/// loads the finished chunks instead of redoing them; a run with different settings is refused,
/// naming the setting that differs, rather than mixing two runs in one output.
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "scoreflow/fingerprint.h"
#include "scoreflow/npy.h"

namespace scoreflow::io {

/// Removes files in `dir` whose names start with `prefix` and end in the ".tmp.<pid>.<n>" of
/// io::write_file_atomic, left by a writer that was killed (only when <pid> no longer runs).
void remove_stale_temporaries(const std::string& dir, const std::string& prefix);

/// What determines a job's results, as ordered (name, value) pairs; names are what the refusal
/// message shows (e.g. "sampler", "model file hash", "sigmas").
using Settings = std::vector<std::pair<std::string, std::string>>;

/// A long computation's finished pieces, by name: `memo(name, compute)` returns what an earlier
/// (killed) run stored under `name`, or else compute() — stored before it is returned. Pieces are
/// CPU tensors (float64 keeps doubles exact). Library code takes a Memo so that the CLI can make
/// it resumable without the library knowing where the pieces live.
using Memo = std::function<torch::Tensor(const std::string& name, const std::function<torch::Tensor()>& compute)>;

/// compute() through `memo`, or directly when `memo` is empty.
torch::Tensor memoize(const Memo& memo, const std::string& name, const std::function<torch::Tensor()>& compute);

/// A folder of finished chunks (`<name>.npy`) plus `manifest.json` holding the settings. One store
/// may be shared by several threads (the devices of one job): load() and save() lock.
class ChunkStore {
 public:
  /// Opens `dir` for a job with `settings`; nothing is created until the first save(). An
  /// existing manifest with different settings throws Error naming the first differing setting
  /// (`option` is the flag whose output the folder belongs to, for the message) unless
  /// `overwrite`, which clears the folder. Temporary files left by a killed writer are removed.
  ChunkStore(std::string dir, Settings settings, bool overwrite, const std::string& option);

  /// Names of the finished chunks, sorted.
  std::vector<std::string> chunks() const;
  /// A finished chunk, or nothing when it is missing or unreadable (then it is simply redone).
  std::optional<NpyArray> load(const std::string& name) const;
  /// Stores a finished chunk atomically (creating the folder and manifest on first use).
  void save(const std::string& name, const NpyArray& array);
  /// A Memo over this store (the store must outlive it): a finished chunk is loaded, a missing one
  /// computed and saved.
  Memo memo();
  /// Deletes the folder: the job's final outputs are written and nothing is left to resume.
  void remove();
  const std::string& dir() const { return dir_; }
  /// Chunks load() has returned so far (work an earlier run had finished).
  int64_t loaded() const { return loaded_; }

 private:
  std::string dir_;
  Settings settings_;
  bool manifest_written_ = false;
  mutable int64_t loaded_ = 0;
  std::shared_ptr<std::mutex> lock_ = std::make_shared<std::mutex>();  // shared_ptr: the store stays movable
};

}  // namespace scoreflow::io
