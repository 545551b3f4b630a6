#pragma once
/// Wall time for the jobs' reports (`wall_seconds`).
#include <chrono>

namespace scoreflow::jobs {

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace scoreflow::jobs
