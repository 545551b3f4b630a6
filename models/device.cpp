#include "scoreflow/device.h"

#include <ATen/Parallel.h>
#include <sched.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "scoreflow/error.h"

namespace scoreflow {
namespace {
bool threads_requested = false;

void cap_threads_for_gpu() {
  if (!threads_requested && at::get_num_threads() > kGpuHostThreads) at::set_num_threads(kGpuHostThreads);
}
}  // namespace

int usable_cores() {
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) cores = std::max(1, CPU_COUNT(&set));
  std::ifstream quota_file("/sys/fs/cgroup/cpu.max");
  std::string quota;
  double period = 0;
  if (quota_file >> quota >> period && quota != "max" && period > 0) {
    const double limit = std::atof(quota.c_str()) / period;
    if (limit > 0) cores = std::min(cores, std::max(1, static_cast<int>(std::ceil(limit))));
  }
  return cores;
}

void set_cpu_threads(int requested) {
  threads_requested = requested > 0;
  at::set_num_threads(requested > 0 ? requested : usable_cores());
}

torch::Device parse_device(const std::string& text) {
  if (text == "cpu") return torch::kCPU;
  if (text == "cuda" || text.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available())
      fail(Field{"device"}, " ", text, ": CUDA is not available (this LibTorch build or machine has no GPU)");
    int index = 0;
    if (text.size() > 5) {
      try {
        index = std::stoi(text.substr(5));
      } catch (const std::exception&) {
        fail(Field{"device"}, " '", text, "' is malformed; use cpu, cuda or cuda:N");
      }
    }
    if (index < 0 || index >= static_cast<int>(torch::cuda::device_count()))
      fail(Field{"device"}, " ", text, ": only ", torch::cuda::device_count(), " CUDA device(s)");
    cap_threads_for_gpu();
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  fail(Field{"device"}, " '", text, "' is unknown; valid: cpu, cuda, cuda:N");
}

}  // namespace scoreflow
