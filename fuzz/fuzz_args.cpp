// libFuzzer entry for scoreflow::fuzz::args (fuzz/targets.h).
#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  scoreflow::fuzz::args(data, size);
  return 0;
}
