// RowPrefetcher: double-buffered host-to-device copies on a side stream (io/prefetch.h).
#include "io/prefetch.h"

#include <algorithm>

#include "scoreflow/error.h"

#ifdef SCOREFLOW_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace scoreflow::io {

#ifdef SCOREFLOW_WITH_CUDA
struct RowPrefetcher::Cuda {
  c10::cuda::CUDAStream side;
  torch::Tensor buffer[2];        // allocated on the current stream, written on `side`
  at::cuda::CUDAEvent copied[2];  // buffer k holds its batch (recorded on `side`)
  at::cuda::CUDAEvent released;   // the current stream's work queued so far (recorded on it)
  explicit Cuda(torch::Device device) : side(c10::cuda::getStreamFromPool(false, device.index())) {}
};
#else
struct RowPrefetcher::Cuda {};
#endif

RowPrefetcher::RowPrefetcher(torch::Tensor rows, int64_t batch, torch::Device device)
    : rows_(std::move(rows)), batch_(batch), batches_(0), device_(device) {
  if (!rows_.defined() || rows_.dim() < 1) fail("row prefetch needs rows [N, ...]");
  if (batch_ < 1) fail("row prefetch: batch must be >= 1, got ", batch_);
  batches_ = (rows_.size(0) + batch_ - 1) / batch_;
#ifdef SCOREFLOW_WITH_CUDA
  if (device_.is_cuda() && rows_.device().is_cpu() && batches_ > 0) {
    if (!device_.has_index()) device_ = torch::Device(torch::kCUDA, c10::cuda::current_device());
    c10::cuda::CUDAGuard guard(device_);
    rows_ = rows_.contiguous();
    if (!rows_.is_pinned()) rows_ = rows_.pin_memory();
    cuda_ = std::make_unique<Cuda>(device_);
    std::vector<int64_t> shape = rows_.sizes().vec();
    shape[0] = std::min(batch_, rows_.size(0));
    // Fresh buffers may reuse memory that work already queued on the current stream still reads:
    // the side stream starts after that work.
    for (auto& b : cuda_->buffer) b = torch::empty(shape, rows_.options().device(device_).pinned_memory(false));
    cuda_->released.record(c10::cuda::getCurrentCUDAStream(device_.index()));
    cuda_->released.block(cuda_->side);
    issue(0);
  }
#endif
}

RowPrefetcher::~RowPrefetcher() {
#ifdef SCOREFLOW_WITH_CUDA
  // The buffers go back to the allocator of the current stream: let it wait for copies in flight.
  if (cuda_) {
    c10::cuda::CUDAGuard guard(device_);
    for (auto& e : cuda_->copied)
      if (e.isCreated()) e.block(c10::cuda::getCurrentCUDAStream(device_.index()));
  }
#endif
}

int64_t RowPrefetcher::batch_size(int64_t b) const { return std::min(batch_, rows_.size(0) - b * batch_); }

void RowPrefetcher::issue(int64_t b) {
#ifdef SCOREFLOW_WITH_CUDA
  c10::cuda::CUDAStreamGuard stream_guard(cuda_->side);
  const int64_t m = batch_size(b);
  cuda_->buffer[b % 2].narrow(0, 0, m).copy_(rows_.narrow(0, batch_begin(b), m), /*non_blocking=*/true);
  cuda_->copied[b % 2].record(cuda_->side);
#else
  (void)b;
#endif
}

torch::Tensor RowPrefetcher::get(int64_t b) {
  if (b != next_) fail("row prefetch: batch ", b, " requested out of order (expected ", next_, ")");
  if (b >= batches_) fail("row prefetch: batch ", b, " is past the last batch ", batches_ - 1);
  ++next_;
  const int64_t m = batch_size(b);
  if (!cuda_) {
    torch::Tensor slice = rows_.narrow(0, batch_begin(b), m);
    return slice.device() == device_ ? slice : slice.to(device_);
  }
#ifdef SCOREFLOW_WITH_CUDA
  c10::cuda::CUDAGuard guard(device_);
  const c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(device_.index());
  if (b + 1 < batches_) {
    // Buffer (b+1)%2 last held batch b−1, whose work has all been queued by now.
    cuda_->released.record(current);
    cuda_->released.block(cuda_->side);
    issue(b + 1);
  }
  cuda_->copied[b % 2].block(current);
  return cuda_->buffer[b % 2].narrow(0, 0, m);
#else
  return {};
#endif
}

}  // namespace scoreflow::io
