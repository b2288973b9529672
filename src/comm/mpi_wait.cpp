#include "comm/mpi_wait.h"

#include <thread>

#include "util/check.h"

namespace bs {

void wait_with_naps(MPI_Request& req, std::chrono::microseconds nap, int spins) {
  for (int i = 0, done = 0;; ++i) {
    BS_MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    if (done) return;
    if (i >= spins) std::this_thread::sleep_for(nap);
  }
}

}  // namespace bs
