#include "comm/mpi_communicator.h"

#include <climits>

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

MpiCommunicator::MpiCommunicator(MPI_Comm comm) : comm_(comm) {
  BS_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  BS_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL && comm_ != MPI_COMM_WORLD) MPI_Comm_free(&comm_);
}

void MpiCommunicator::allreduce_sum(float* data, size_t count) {
  if (size_ == 1) return;
  chunked(data, count,
          [&](float* p, int n) { BS_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_FLOAT, MPI_SUM, comm_)); });
}

void MpiCommunicator::allreduce_sum(double* data, size_t count) {
  if (size_ == 1) return;
  chunked(data, count,
          [&](double* p, int n) { BS_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_DOUBLE, MPI_SUM, comm_)); });
}

}  // namespace bs
