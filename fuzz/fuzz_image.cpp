// libFuzzer entry for scoreflow::fuzz::image (fuzz/targets.h).
#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  scoreflow::fuzz::image(data, size);
  return 0;
}
