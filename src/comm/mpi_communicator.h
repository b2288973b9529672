#pragma once
#include <mpi.h>

#include "comm/communicator.h"

namespace bs {

// Owns a communicator made by MPI_Comm_split and frees it on destruction.
class MpiCommunicator final : public Communicator {
 public:
  // `oversubscribed`: more ranks on this node than cores (see allreduce_sum).
  // Collective over `comm` (its ranks agree on how to wait).
  explicit MpiCommunicator(MPI_Comm comm, bool oversubscribed = false);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  void allreduce_sum(float* data, size_t count) override;
  void allreduce_sum(double* data, size_t count) override;
  MPI_Comm comm() const { return comm_; }

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  bool sleep_while_waiting_ = false;
};

}  // namespace bs
