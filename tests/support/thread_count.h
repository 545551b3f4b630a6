#pragma once
/// LibTorch's intra-op thread count set for one scope and given back at its end, for tests whose
/// subject depends on it (thread teams, the CPU path's note).
#include <ATen/Parallel.h>

namespace scoreflow::testing_support {

struct ThreadCount {
  explicit ThreadCount(int n) : old(at::get_num_threads()) { at::set_num_threads(n); }
  ~ThreadCount() { at::set_num_threads(old); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;
  int old;
};

}  // namespace scoreflow::testing_support
