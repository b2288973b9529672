#pragma once
// Requests from group leaders to world rank 0, each a few integers, and rank
// 0's one-integer answers: the transport of the shared run queue
// (app/run_queue.h). It has its own duplicate of the world communicator, so
// its messages and the TextChannel's (which takes any tag on the world
// communicator) can never be received by the other, whatever the tags.
#include <array>
#include <optional>

#include <mpi.h>

namespace bs {

class RequestChannel {
 public:
  using Body = std::array<int, 4>;
  struct Request {
    int source = 0;             // world rank
    bool wants_answer = false;  // sent by ask (answer it), not tell
    Body body{};
  };

  // Collective over `world` (MPI_Comm_dup); so is the destructor (MPI_Comm_free).
  explicit RequestChannel(MPI_Comm world = MPI_COMM_WORLD);
  ~RequestChannel();
  RequestChannel(const RequestChannel&) = delete;
  RequestChannel& operator=(const RequestChannel&) = delete;

  // Sends `body` to rank 0 and waits for its answer.
  int ask(const Body& body);
  // Sends `body` to rank 0, which does not answer.
  void tell(const Body& body);
  // Rank 0: the next request that has arrived, without blocking.
  std::optional<Request> poll();
  void answer(int rank, int value);

  // Collective over `comm`: `value` of its rank `root`, on every rank.
  static int broadcast(int value, int root, MPI_Comm comm);

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

}  // namespace bs
