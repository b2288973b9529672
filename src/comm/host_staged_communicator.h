#pragma once
// Reduces device buffers over MPI by staging them through pinned host memory.
// This is what lets several ranks share one GPU (NCCL refuses two ranks of a
// communicator on the same device) and what runs where NCCL is not built.
#include "comm/communicator.h"
#include "gpu/cuda_runtime.h"

namespace bs {

class HostStagedCommunicator final : public Communicator {
 public:
  // `inner` (an MpiCommunicator) must outlive this object.
  explicit HostStagedCommunicator(Communicator& inner) : inner_(inner) {}

  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string backend() const override { return inner_.backend() + "-host-staged"; }
  void allreduce_sum(float* data, size_t count) override { staged(data, count); }
  void allreduce_sum(double* data, size_t count) override { staged(data, count); }

 private:
  template <typename T>
  void staged(T* device_data, size_t count) {
    // The copy out waits for the kernels queued before it (legacy default
    // stream), so the sum sees the finished gradient; the copy back is queued
    // before the kernels that read it. The host blocks for both: this path
    // trades the overlap NCCL gives for working with any rank placement.
    T* host = static_cast<T*>(buffer_.reserve(count * sizeof(T)));
    gpu::copy_to_host(host, device_data, count * sizeof(T));
    inner_.allreduce_sum(host, count);
    gpu::copy_to_device(device_data, host, count * sizeof(T));
  }

  Communicator& inner_;
  gpu::PinnedBuffer buffer_;
};

}  // namespace bs
