// libFuzzer entry for scoreflow::fuzz::metadata (fuzz/targets.h).
#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  scoreflow::fuzz::metadata(data, size);
  return 0;
}
