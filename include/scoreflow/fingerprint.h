#pragma once
/// One fingerprint. Everything that records what produced a file — shard records, resume
/// manifests, Γ shards, schedule files, AMED records, the CPU fast path's cache — identifies its
/// inputs with these functions: one hash (64-bit FNV-1a) printed one way, "fnv1a64:<16 hex digits>".
/// A fingerprint is not a security measure; it tells two runs' inputs apart.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace scoreflow {

class Model;

namespace io {

/// 64-bit FNV-1a of `size` bytes, continuing from `h` (so that pieces can be chained).
uint64_t fnv1a64(const void* data, size_t size, uint64_t h = 0xcbf29ce484222325ull);
/// FNV-1a of a file's contents, streamed; "fnv1a64:<16 hex digits>". Throws Error naming the file.
std::string hash_file(const std::string& path);
/// "fnv1a64:<16 hex digits>" of a string.
std::string hash_text(const std::string& text);
/// What identifies an input path (a dataset, a feature network, reference statistics): "(none)"
/// for "", a `builtin:` spec as written, "folder fnv1a64:…" of a folder's file names and sizes
/// (hashing every image would cost as much as reading them), else the file's hash.
std::string path_fingerprint(const std::string& path);

}  // namespace io

/// A model's identity and content in one string: for a file, the hash of its bytes (cached while
/// the file's size and modification time stay); for a `builtin:` model, the hash of its spec and
/// resolved metadata. "fnv1a64:<16 hex digits>". Throws Error when the file cannot be read.
std::string model_fingerprint(const Model& model);

/// "N seeds, fnv1a64:<16 hex digits>" of the seed list, in order.
std::string seeds_fingerprint(const std::vector<uint64_t>& seeds);

}  // namespace scoreflow
