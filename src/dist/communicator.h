#pragma once
// The collective operations a replica group needs, behind one interface so the
// trainer does not care whether they run over MPI (CPU tensors, or host-staged
// GPU tensors) or NCCL (GPU, issue 3). One backend per file pair.
#include <cstddef>
#include <string>

namespace bs {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;
  // In-place sums over the group. The caller pre-scales by its sample weight
  // B_i / B, so a sum is the sample-weighted mean (never divide by size()).
  virtual void allreduce_sum(float* data, size_t count) = 0;
  virtual void allreduce_sum(double* data, size_t count) = 0;
};

}  // namespace bs
