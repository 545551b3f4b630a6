// libFuzzer entry for scoreflow::fuzz::npz (fuzz/targets.h).
#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  scoreflow::fuzz::npz(data, size);
  return 0;
}
