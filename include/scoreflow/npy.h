#pragma once
/// NumPy .npy / .npz arrays (the format of ADM/EDM sample archives and pytorch-fid statistics).
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace scoreflow::io {

/// One array as stored in a .npy: NumPy dtype string ("<f4", "<f8", "|u1", "<i4", "<i8", "|b1",
/// "<f2"), shape, C-order little-endian bytes.
struct NpyArray {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

/// Copies into a CPU tensor of the matching dtype; throws Error for unsupported dtypes.
torch::Tensor to_tensor(const NpyArray& array);
/// Copies a (any-device) tensor: float32/float64/float16/uint8/int32/int64/bool.
NpyArray from_tensor(const torch::Tensor& tensor);

/// Parses .npy bytes; `what` names the source in error messages.
NpyArray parse_npy(const uint8_t* data, size_t size, const std::string& what);
std::string serialize_npy(const NpyArray& array);

NpyArray read_npy(const std::string& path);
void write_npy(const std::string& path, const NpyArray& array);  // atomic

/// Reads np.savez (stored) and np.savez_compressed (deflate) archives: key -> array (key without
/// the ".npy" suffix). Throws Error naming the file and the broken entry.
std::map<std::string, NpyArray> read_npz(const std::string& path);
/// Writes an uncompressed .npz (readable by numpy.load), atomically.
void write_npz(const std::string& path, const std::vector<std::pair<std::string, NpyArray>>& arrays);

}  // namespace scoreflow::io
