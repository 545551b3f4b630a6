// The one splitter (scoreflow/jobs.h): slices of whole blocks, one thread each.
#include <exception>
#include <thread>

#include "scoreflow/error.h"
#include "scoreflow/jobs.h"

namespace scoreflow::jobs {

void run_on_threads(int64_t n, const std::function<void(int64_t)>& work) {
  if (n == 1) return work(0);
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int64_t k = 0; k < n; ++k)
    threads.emplace_back([&, k] {
      try {
        work(k);
      } catch (...) {
        errors[static_cast<size_t>(k)] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

std::vector<std::pair<int64_t, int64_t>> split_over_workers(
    int64_t items, int64_t block, int64_t workers,
    const std::function<void(int64_t k, int64_t begin, int64_t end)>& work) {
  if (workers < 1) fail("no workers to split ", items, " items over");
  std::vector<std::pair<int64_t, int64_t>> slices;
  for (int64_t k = 0; k < workers; ++k) slices.push_back(shard_range(items, block, k, workers));
  run_on_threads(workers, [&](int64_t k) {
    const auto [begin, end] = slices[static_cast<size_t>(k)];
    if (end > begin) work(k, begin, end);  // fewer blocks than workers leaves some idle
  });
  return slices;
}

}  // namespace scoreflow::jobs
