#include "models/cpu_teams.h"

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace scoreflow::detail {

int cpu_team_count(int64_t batch, int threads, int option) {
  if (option == 1 || batch < cpu_team_min_rows(option)) return 1;
  const int64_t most = option == 0 ? threads / 4 : std::min(option, threads);
  return static_cast<int>(std::max<int64_t>(1, std::min(batch, most)));
}

namespace {

/// `teams` worker threads that wait for a job and run their part of it. A worker's intra-op
/// thread count is an OpenMP setting of its own thread, set once when it starts.
class TeamPool {
 public:
  TeamPool(int teams, int threads_each) {
    const int caller_threads = at::get_num_threads();
    for (int k = 0; k < teams; ++k) workers_.emplace_back([this, k, threads_each] { work(k, threads_each); });
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return started_ == static_cast<int>(workers_.size()); });
    lock.unlock();
    // at::set_num_threads also sets the process-wide count new threads start with: give it back.
    at::set_num_threads(caller_threads);
  }

  /// Stops the workers and waits for them; each worker's OpenMP threads end with it.
  ~TeamPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& w : workers_) w.join();
  }

  void run(const std::function<void(int)>& part) {
    std::lock_guard<std::mutex> one_job(run_mutex_);  // callers on other threads wait their turn
    std::unique_lock<std::mutex> lock(mutex_);
    part_ = &part;
    state_ = at::ThreadLocalState();
    errors_.assign(workers_.size(), nullptr);
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
    wake_.notify_all();
    done_.wait(lock, [&] { return pending_ == 0; });
    part_ = nullptr;
    for (const std::exception_ptr& e : errors_)
      if (e) std::rethrow_exception(e);
  }

 private:
  void work(int k, int threads_each) {
    // One worker at a time: at::set_num_threads also writes process-wide state.
    std::unique_lock<std::mutex> lock(mutex_);
    at::get_num_threads();  // ATen's per-thread first-use set-up, which would otherwise undo the next line
    at::set_num_threads(threads_each);
    ++started_;
    done_.notify_all();
    uint64_t seen = 0;
    for (;;) {
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      const std::function<void(int)>& part = *part_;
      const at::ThreadLocalState state = state_;
      lock.unlock();
      std::exception_ptr error;
      try {
        at::ThreadLocalStateGuard guard(state);
        part(k);
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      errors_[k] = error;
      if (--pending_ == 0) done_.notify_all();
    }
  }

  std::mutex run_mutex_, mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* part_ = nullptr;
  at::ThreadLocalState state_;
  std::vector<std::exception_ptr> errors_;
  uint64_t generation_ = 0;
  int pending_ = 0, started_ = 0;
  bool stop_ = false;
};

std::mutex pools_mutex;
// Pools by (teams, threads each); shared so that a pool released while a call runs on it lives
// until that call ends. Never destroyed itself, as it may be used until the process ends.
auto* const pools = new std::map<std::pair<int, int>, std::shared_ptr<TeamPool>>();

}  // namespace

void run_on_cpu_teams(int teams, int threads, const std::function<void(int)>& part) {
  if (teams <= 1) return part(0);
  std::shared_ptr<TeamPool> pool;
  {
    std::lock_guard<std::mutex> lock(pools_mutex);
    const int each = std::max(1, threads / teams);
    std::shared_ptr<TeamPool>& slot = (*pools)[{teams, each}];
    if (!slot) slot = std::make_shared<TeamPool>(teams, each);
    pool = slot;
  }
  pool->run(part);
}

void release_cpu_teams() {
  std::map<std::pair<int, int>, std::shared_ptr<TeamPool>> released;
  {
    std::lock_guard<std::mutex> lock(pools_mutex);
    if (pools->empty()) return;
    released.swap(*pools);
  }
  // The pools end here (or with the last call still running on one), outside the lock.
}

int cpu_team_workers() {
  std::lock_guard<std::mutex> lock(pools_mutex);
  int n = 0;
  for (const auto& [key, pool] : *pools) n += key.first;
  return n;
}

}  // namespace scoreflow::detail
