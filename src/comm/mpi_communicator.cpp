#include "comm/mpi_communicator.h"

#include <chrono>
#include <climits>

#include "comm/mpi_wait.h"
#include "util/check.h"

namespace bs {
namespace {
// MPI counts are int; split very large buffers so a huge model cannot overflow.
template <typename T, typename Fn>
void chunked(T* data, size_t count, Fn fn) {
  const size_t kMax = static_cast<size_t>(INT_MAX) / 2;
  for (size_t off = 0; off < count; off += kMax) fn(data + off, static_cast<int>(std::min(kMax, count - off)));
}

}  // namespace

// Only for two ranks: every allreduce algorithm then computes x0 + x1, the
// same bits, while with more ranks a non-blocking algorithm may add in
// another order, and a run's numbers must not depend on where it ran. Both
// ranks must make the same call (a blocking and a non-blocking collective do
// not match), so they agree: one oversubscribed node (a group may span two)
// is enough.
MpiCommunicator::MpiCommunicator(MPI_Comm comm, bool oversubscribed) : comm_(comm) {
  BS_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  BS_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  if (size_ != 2) return;
  int mine = oversubscribed ? 1 : 0, any = 0;
  BS_MPI_CHECK(MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, comm_));
  sleep_while_waiting_ = any != 0;
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL && comm_ != MPI_COMM_WORLD) MPI_Comm_free(&comm_);
}

void MpiCommunicator::allreduce_sum(float* data, size_t count) {
  if (size_ == 1) return;
  chunked(data, count, [&](float* p, int n) {
    if (!sleep_while_waiting_) {
      BS_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_FLOAT, MPI_SUM, comm_));
      return;
    }
    MPI_Request req = MPI_REQUEST_NULL;
    BS_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, p, n, MPI_FLOAT, MPI_SUM, comm_, &req));
    // 64 tests first, then 20 us naps: the core goes to a rank with work
    // instead of to the yield loop.
    wait_with_naps(req, std::chrono::microseconds(20), 64);
  });
}

void MpiCommunicator::allreduce_sum(double* data, size_t count) {
  if (size_ == 1) return;
  chunked(data, count,
          [&](double* p, int n) { BS_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_DOUBLE, MPI_SUM, comm_)); });
}

}  // namespace bs
