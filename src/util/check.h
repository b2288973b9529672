#pragma once
// Check macros, used only where we call a C library (MPI, HDF5; CUDA and NCCL
// have their own in gpu/ and comm/). Each failure names the call and the
// file:line, and becomes a typed LibraryError so `main` can report it once
// (naming the world rank) and abort the job. util/ sits below MPI, so the rank
// is read from the launcher's environment when one set it.
#include <string>

#include "util/errors.h"

namespace bs::detail {
// The launcher's rank for this process (OMPI_COMM_WORLD_RANK, PMIX_RANK,
// PMI_RANK, SLURM_PROCID), or -1 outside a launcher.
int launcher_rank_or_minus1();
[[noreturn]] void throw_library_error(const char* lib, const char* call, const std::string& detail, const char* file,
                                      int line);
}  // namespace bs::detail

#define BS_MPI_CHECK(call)                                                                                         \
  do {                                                                                                             \
    int bs_rc_ = (call);                                                                                           \
    if (bs_rc_ != 0 /* MPI_SUCCESS */)                                                                             \
      ::bs::detail::throw_library_error("MPI", #call, "error code " + std::to_string(bs_rc_), __FILE__, __LINE__); \
  } while (0)

// HDF5 calls return a negative value (herr_t or hid_t) on failure.
#define BS_H5_CHECK(call)                                                                     \
  ([&]() {                                                                                    \
    auto bs_rc_ = (call);                                                                     \
    if (bs_rc_ < 0) ::bs::detail::throw_library_error("HDF5", #call, "", __FILE__, __LINE__); \
    return bs_rc_;                                                                            \
  }())
