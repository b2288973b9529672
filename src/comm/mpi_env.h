#pragma once
// MPI lifetime and the world-level exchanges the app needs (hosts, the split
// into replica groups, gathering text to rank 0).
#include <memory>
#include <string>
#include <vector>

#include <mpi.h>

#include "comm/mpi_communicator.h"

namespace bs {

class MpiEnv {
 public:
  MpiEnv(int* argc, char*** argv);
  ~MpiEnv();
  MpiEnv(const MpiEnv&) = delete;
  MpiEnv& operator=(const MpiEnv&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& host() const { return host_; }
  // Ranks on this node (MPI_COMM_TYPE_SHARED), to divide the cores among them.
  int local_size() const { return local_size_; }
  // This rank's index among them: it picks the rank's GPU.
  int local_rank() const { return local_rank_; }

  // MPI_Comm_split; color < 0 means this rank joins no group (returns null).
  std::unique_ptr<MpiCommunicator> split(int color, int key) const;
  // Every rank's string, on every rank (MPI_Allgatherv).
  std::vector<std::string> allgather(const std::string& mine, MPI_Comm comm) const;
  // Rank root's flag and text, on every rank.
  void broadcast(int& flag, std::string& text, int root) const;
  int allreduce_max(int value) const;
  [[noreturn]] void abort(int code) const;

 private:
  int rank_ = 0, size_ = 1, local_size_ = 1, local_rank_ = 0;
  std::string host_;
};

// World rank when MPI is initialized, else -1; names the rank in NCCL errors.
int world_rank_if_initialized();

// CPUs this process may run on: its affinity mask (a launcher's binding, a
// scheduler's cpuset), which hardware_concurrency() ignores; at least 1.
int usable_cores();
// CPUs online on this node (hardware_concurrency), at least 1.
int online_cores();

}  // namespace bs
