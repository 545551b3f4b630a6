#pragma once
// One input through each parser that reads untrusted bytes. The libFuzzer mains (fuzz_*.cpp) and
// the regression test (tests/fuzz_regression_test.cpp, replaying tests/data/fuzz_regressions/)
// share these, so a kept crash input is replayed exactly as the fuzzer ran it.
//
// Refusing an input with scoreflow::Error is the contract; any other exception escapes, and
// libFuzzer (or the test) reports it, as it does crashes and sanitizer findings.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "scoreflow/args.h"
#include "scoreflow/data.h"
#include "scoreflow/error.h"
#include "scoreflow/image.h"
#include "scoreflow/model.h"
#include "scoreflow/npy.h"
#include "scoreflow/seeds.h"

namespace scoreflow::fuzz {

/// Runs `f`, swallowing only scoreflow::Error.
template <typename F>
void refuse_ok(F&& f) {
  try {
    f();
  } catch (const scoreflow::Error&) {
  }
}

/// The readers take paths: write the input to /tmp/scoreflow-fuzz-<pid><suffix> (the suffix picks
/// the reader) and return the path.
inline std::string input_file(const uint8_t* data, size_t size, const std::string& suffix) {
  const std::string path = "/tmp/scoreflow-fuzz-" + std::to_string(::getpid()) + suffix;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}

/// resolve_metadata on an archive's scoreflow.json; a first line containing '=' is also applied
/// as a --meta override. Then schedule_from_json on the same text.
inline void metadata(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  const size_t nl = text.find('\n');
  if (nl != std::string::npos && text.substr(0, nl).find('=') != std::string::npos) {
    overrides.push_back(text.substr(0, nl));
    text = text.substr(nl + 1);
  }
  refuse_ok([&] { resolve_metadata(text, "", overrides, "fuzz.pt"); });
  refuse_ok([&] { schedule_from_json(text); });
}

/// --seeds, --sigmas and k=v option lists (every getter on every key, then finish()).
inline void args(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  refuse_ok([&] { parse_seeds(text); });
  refuse_ok([&] { parse_double_list(text, "--sigmas"); });
  refuse_ok([&] {
    KeyValueArgs kv(text, "sampler arg");
    for (const auto& item : kv.values()) {
      const std::string key = item.first;  // C++17 lambdas cannot capture structured bindings
      refuse_ok([&] { kv.get_double(key, 0); });
      refuse_ok([&] { kv.get_int(key, 0); });
      refuse_ok([&] { kv.get_bool(key, false); });
      refuse_ok([&] { kv.get_list(key, {}); });
    }
    kv.finish("fuzz");
  });
}

/// read_image: whatever stb recognises (PNG, JPEG, BMP, GIF, ...).
inline void image(const uint8_t* data, size_t size) {
  const std::string path = input_file(data, size, ".img");
  refuse_ok([&] { io::read_image(path); });
}

/// open_dataset on an idx file (gzread passes plain files through), then one batch.
inline void idx(const uint8_t* data, size_t size) {
  const std::string path = input_file(data, size, ".idx");
  refuse_ok([&] {
    auto dataset = io::open_dataset(path, {});
    dataset->batch(0, std::min<int64_t>(dataset->size(), 4));
  });
}

/// parse_npy on the bytes, and read_npz on them as a file; every array converted to a tensor.
inline void npz(const uint8_t* data, size_t size) {
  refuse_ok([&] { io::to_tensor(io::parse_npy(data, size, "fuzz.npy")); });
  const std::string path = input_file(data, size, ".npz");
  refuse_ok([&] {
    for (const auto& [key, array] : io::read_npz(path)) io::to_tensor(array);
  });
}

/// Target name (the fuzz_<name> executable, the folder under tests/data/fuzz_regressions/) -> entry.
inline const std::map<std::string, std::function<void(const uint8_t*, size_t)>>& targets() {
  static const std::map<std::string, std::function<void(const uint8_t*, size_t)>> table = {
      {"metadata", metadata}, {"args", args}, {"image", image}, {"idx", idx}, {"npz", npz}};
  return table;
}

}  // namespace scoreflow::fuzz
