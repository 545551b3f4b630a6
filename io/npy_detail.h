#pragma once
/// Pieces of the .npy code shared with the .npz reader/writer (not part of the public API).
#include <cstdint>
#include <string>
#include <vector>

#include "scoreflow/npy.h"

namespace scoreflow::io {

/// numpy's name of a dtype ("float32", "int64", …; c10's name for a type numpy lacks), for messages.
std::string numpy_dtype_name(torch::ScalarType t);
/// Bytes per element of a canonical dtype string; throws Error naming `what` otherwise.
size_t npy_itemsize(const std::string& dtype, const std::string& what);
/// Product of `shape`, refusing negative or overflowing dimensions.
uint64_t npy_element_count(const std::vector<int64_t>& shape, const std::string& what);
/// Magic, version and padded header dict for `array` (data not included).
std::string npy_header(const NpyArray& array);

/// One archive member for write_zip: `name` and bytes split in two parts (header, data) so that a
/// large array is never concatenated into a second copy.
struct ZipMember {
  std::string name;
  std::string head;
  const uint8_t* data = nullptr;
  size_t data_size = 0;
};
/// Writes a ZIP of stored members atomically; `force_zip64` adds zip64 records even when the sizes
/// fit in 32 bits (python's zipfile does the same; tests use it to cover the > 4 GiB path).
void write_zip(const std::string& path, const std::vector<ZipMember>& members, bool force_zip64);

}  // namespace scoreflow::io
