#pragma once
// Short text messages from group leaders to world rank 0, which alone prints,
// so the console shows one coherent stream however many groups run. Sends are
// non-blocking: a leader never waits on rank 0, which reads between its own
// steps and after its own queue.
#include <list>
#include <string>
#include <vector>

#include <mpi.h>

namespace bs {

class TextChannel {
 public:
  enum Tag : int { kProgress = 7301, kRunDone = 7302, kGroupDone = 7303 };
  explicit TextChannel(MPI_Comm world = MPI_COMM_WORLD);
  ~TextChannel();
  TextChannel(const TextChannel&) = delete;
  TextChannel& operator=(const TextChannel&) = delete;

  void send(Tag tag, const std::string& text);  // to rank 0
  // All messages that have arrived, as (tag, text), without blocking.
  std::vector<std::pair<int, std::string>> poll();
  // Blocks for the next message.
  std::pair<int, std::string> wait();
  // Completes our pending sends (before MPI_Finalize).
  void drain();

 private:
  std::pair<int, std::string> receive(const MPI_Status& st);
  MPI_Comm comm_;
  struct Pending {
    std::string text;
    MPI_Request req;
  };
  std::list<Pending> pending_;
};

}  // namespace bs
