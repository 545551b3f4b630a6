#pragma once
/// Devices by name and LibTorch's CPU threads: what every command that runs a model on a chosen
/// device does before it opens the model.
#include <torch/types.h>

#include <string>

namespace scoreflow {

/// "cpu", "cuda", "cuda:1"; throws Error naming the field `device` and the value when CUDA is not
/// available, the index is out of range or the name is unknown. A CUDA device also lowers
/// LibTorch's CPU threads to kGpuHostThreads unless set_cpu_threads was given a count.
torch::Device parse_device(const std::string& text);

/// LibTorch's CPU (intra-op) threads: `requested` when > 0, else usable_cores(). Without a
/// requested count, the first CUDA device parsed lowers the count to kGpuHostThreads: the CPU then
/// only prepares batches, and idle OpenMP workers spinning on every core starve the threads that
/// launch the kernels (estimate-gamma ran 2x slower with 32 threads than with 1-8 on a 32-core
/// host; docs/performance.md).
void set_cpu_threads(int requested);
inline constexpr int kGpuHostThreads = 4;

/// The cores this process may use: its CPU affinity mask (taskset, Slurm, docker --cpuset-cpus),
/// lowered to a cgroup v2 CPU quota (docker --cpus, Kubernetes limits) rounded up, so that "all
/// cores" never oversubscribes a container on a large host.
int usable_cores();

}  // namespace scoreflow
