#pragma once
// NCCL behind the Communicator interface, one communicator per replica group,
// bootstrapped over the group's MPI communicator. No NCCL or CUDA header here:
// builds without NCCL compile nccl_absent.cpp instead (CMake picks), and
// asking for NCCL there is a LibraryError that says how to get it.
#include <memory>
#include <string>

#include <mpi.h>

#include "comm/communicator.h"

namespace bs {

struct NcclOptions {
  int device = 0;          // CUDA device of this rank (already chosen by plan_devices)
  double timeout_s = 300;  // a collective (or the bootstrap) unfinished this long: abort the job
  int max_in_flight = 2;   // collectives queued ahead of the host before it waits for the oldest
};

bool nccl_built();
std::string nccl_version();         // the loaded library's, "2.28.9", or "none"
std::string nccl_header_version();  // the nccl.h compiled against (they can differ: two installs)

// Collective over `group` (every rank of it must call this); `group` is only
// used for the bootstrap and must outlive nothing here.
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm group, const NcclOptions& options);

}  // namespace bs
