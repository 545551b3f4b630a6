#pragma once
// Row batches of a host tensor streamed to a device, the copy of batch b+1 overlapping the work
// on batch b.
// Private to the library, its CLI and tests: not installed (docs/design.md §1).
#include <torch/torch.h>

#include <cstdint>
#include <memory>

namespace scoreflow::io {

/// Hands out batches [b·batch, min((b+1)·batch, N)) of `rows` on `device`, in order b = 0, 1, ….
/// For a CUDA device and host rows (pinned here once when they are not), batch b+1 is copied on a
/// side stream into one of two device buffers while the caller's work on batch b runs on the
/// current stream; get(b) makes the current stream wait for batch b's copy, and the copy into a
/// buffer first waits for the work queued before the previous get() (the last reader of that
/// buffer). No host synchronisation. Otherwise (rows already on `device`, a CPU device, a build
/// without CUDA) each batch is a slice, moved with Tensor::to only when it is on another device.
class RowPrefetcher {
 public:
  RowPrefetcher(torch::Tensor rows, int64_t batch, torch::Device device);
  ~RowPrefetcher();
  RowPrefetcher(const RowPrefetcher&) = delete;
  RowPrefetcher& operator=(const RowPrefetcher&) = delete;

  int64_t batches() const { return batches_; }
  int64_t batch_begin(int64_t b) const { return b * batch_; }
  int64_t batch_size(int64_t b) const;
  /// Batch b's rows on the device, ready for work queued on the current stream from now on. Calls
  /// must come in order b = 0, 1, …; the returned tensor may share memory with the buffer that
  /// batch b+2 is copied into, so it is valid until get(b + 2) (copy it to keep it).
  torch::Tensor get(int64_t b);
  /// True when batches are copied on a side stream (CUDA device, host rows).
  bool overlapped() const { return static_cast<bool>(cuda_); }

 private:
  struct Cuda;
  void issue(int64_t b);
  torch::Tensor rows_;
  int64_t batch_, batches_;
  torch::Device device_;
  int64_t next_ = 0;
  std::unique_ptr<Cuda> cuda_;
};

}  // namespace scoreflow::io
