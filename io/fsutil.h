#pragma once
/// Files are never left half-written: everything scoreflow writes goes to a temporary name in the
/// same directory and is renamed over the target once complete.
/// Private to the library, its CLI and tests: not installed (docs/design.md §1).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace scoreflow::io {

/// Writes `bytes` to `path` atomically (temporary file + fsync + rename). Throws Error naming the
/// path when the directory cannot be written.
void write_file_atomic(const std::string& path, const void* data, size_t size);
void write_file_atomic(const std::string& path, const std::string& bytes);

/// Streaming form of write_file_atomic for outputs too large to build in memory (multi-GB .npz):
/// write() appends to a temporary sibling, commit() fsyncs and renames it over the target. If the
/// object dies uncommitted (an exception), the temporary file is removed.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t size);
  void commit();

 private:
  std::string path_, temp_;
  int fd_ = -1;
  bool committed_ = false;
};

/// Reads a whole file; throws Error("cannot read '<path>': <reason>").
std::vector<uint8_t> read_file(const std::string& path);
/// Reads a file in chunks of up to 64 KiB, passing each to `consume` (retrying interrupted reads);
/// throws as read_file.
void read_file_chunks(const std::string& path, const std::function<void(const uint8_t*, size_t)>& consume);

/// Throws Error naming `path` unless its directory exists and is writable (checked before long
/// jobs start, so that they do not fail at the end).
void check_writable(const std::string& path);

/// One file or folder a command is about to write. `field` names it in messages (library callers
/// give the field, the CLI its flag, e.g. "--out").
struct OutputPath {
  std::string field, path;
  bool directory = false;  ///< a folder to write into (created with its parents if missing)
};

/// Checks every output before any work starts and throws Error "<field> '<path>': <problem>" for
/// the first that fails: a file output must not be an existing directory and its folder must exist
/// and be writable; a folder output must not be an existing file and the folder (or the nearest
/// existing folder above it) must be writable; no two outputs may be the same path (after '.',
/// '..' and symlinks of the existing folders are resolved). Empty paths are skipped.
void check_outputs(const std::vector<OutputPath>& outputs);

/// Creates a directory (and parents); throws Error naming it on failure.
void make_dirs(const std::string& dir);

/// Entry names in `dir` (without "." and ".."), unsorted; empty with *ok = false when it cannot
/// be read. POSIX readdir, not std::filesystem::directory_iterator: PyTorch's CUDA wheels export
/// an older libstdc++'s directory iterator, whose internals differ from the inline code GCC 13
/// compiles against, and linking against them crashed every directory listing on the GPU machine.
std::vector<std::string> list_dir(const std::string& dir, bool* ok = nullptr);
/// Regular files under `dir`, recursively (symlinks followed, unreadable subfolders skipped), as
/// paths "dir/sub/name"; throws Error naming `dir` when it cannot be read.
std::vector<std::string> walk_files(const std::string& dir);
/// True when `path` is a directory (after symlinks).
bool is_dir(const std::string& path);
/// Deletes `path` and, for a folder, everything under it (symlinks are removed, not followed).
/// Returns "" on success (or when nothing was there), else what failed. POSIX calls rather than
/// std::filesystem::remove_all, which on the GPU machine bound to libtorch.so's exported copy and
/// crashed (jumped to a null address).
std::string remove_tree(const std::string& path);

}  // namespace scoreflow::io
