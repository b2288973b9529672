// Built instead of nccl_communicator.cpp when CMake finds no NCCL.
#include "comm/nccl_communicator.h"
#include "util/errors.h"

namespace bs {

bool nccl_built() { return false; }
std::string nccl_version() { return "none"; }
std::string nccl_header_version() { return "none"; }

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm, const NcclOptions&) {
  throw LibraryError(
      "NCCL: this batchscope was built without NCCL (CMake found no nccl.h and libnccl; pass "
      "-DNCCL_ROOT=DIR to cmake), so replica groups can only reduce over MPI: use comm: mpi or comm: auto");
}

}  // namespace bs
