#include "comm/request_channel.h"

#include "comm/mpi_wait.h"
#include "util/check.h"

namespace bs {
namespace {

enum Tag : int { kAsk = 7401, kTell = 7402, kAnswer = 7403 };

// Waits with naps of 0.1 ms (comm/mpi_wait.h): a leader waiting here must
// not take a core from the ranks still training on its node.
void wait_politely(MPI_Request& req) { wait_with_naps(req, std::chrono::microseconds(100)); }

}  // namespace

RequestChannel::RequestChannel(MPI_Comm world) {
  BS_MPI_CHECK(MPI_Comm_dup(world, &comm_));
  BS_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
}

RequestChannel::~RequestChannel() {
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

int RequestChannel::ask(const Body& body) {
  int value = -1;
  MPI_Request req = MPI_REQUEST_NULL;
  // The receive is posted first, so the answer never waits unexpected.
  BS_MPI_CHECK(MPI_Irecv(&value, 1, MPI_INT, 0, kAnswer, comm_, &req));
  BS_MPI_CHECK(MPI_Send(body.data(), static_cast<int>(body.size()), MPI_INT, 0, kAsk, comm_));
  wait_politely(req);
  return value;
}

void RequestChannel::tell(const Body& body) {
  BS_MPI_CHECK(MPI_Send(body.data(), static_cast<int>(body.size()), MPI_INT, 0, kTell, comm_));
}

std::optional<RequestChannel::Request> RequestChannel::poll() {
  int flag = 0;
  MPI_Status st;
  BS_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, &st));
  if (!flag) return std::nullopt;
  Request r;
  r.source = st.MPI_SOURCE;
  r.wants_answer = st.MPI_TAG == kAsk;
  BS_MPI_CHECK(MPI_Recv(r.body.data(), static_cast<int>(r.body.size()), MPI_INT, st.MPI_SOURCE, st.MPI_TAG, comm_,
                        MPI_STATUS_IGNORE));
  return r;
}

void RequestChannel::answer(int rank, int value) {
  // Eager-sized, and the asker has its receive posted: this returns at once.
  BS_MPI_CHECK(MPI_Send(&value, 1, MPI_INT, rank, kAnswer, comm_));
}

int RequestChannel::broadcast(int value, int root, MPI_Comm comm) {
  MPI_Request req = MPI_REQUEST_NULL;
  BS_MPI_CHECK(MPI_Ibcast(&value, 1, MPI_INT, root, comm, &req));
  wait_politely(req);
  return value;
}

}  // namespace bs
