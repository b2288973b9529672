#pragma once
// The collective operations a replica group needs, behind one interface so the
// trainer does not care whether they run over MPI (CPU tensors, or host-staged
// GPU tensors) or NCCL (GPU). One backend per file pair.
//
// Buffers live where the group trains: host memory on the CPU, device memory
// on a GPU (nccl_communicator, host_staged_communicator). Host-side messages
// (flags, strings) go over the group's MpiCommunicator, never through here.
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
  // Returns once every collective issued so far has finished. Backends that
  // only queue work (NCCL) watch it here: a failed or hung peer ends in a
  // LibraryError that names the rank and the operation, never a silent hang.
  // Call it before the host reads a buffer that a collective wrote.
  virtual void wait() {}
};

}  // namespace bs
