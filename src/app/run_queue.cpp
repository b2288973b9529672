#include "app/run_queue.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "util/signals.h"

namespace bs {
namespace {

enum Kind : int { kNext = 1, kLeave = 2 };

}  // namespace

RunQueue::RunQueue(const Layout& layout, const std::vector<RunSpec>& runs, std::vector<int> order, int world_rank)
    : layout_(layout), runs_(runs), queue_(std::move(order)), root_(world_rank == 0) {
  first_ = initial_runs(layout_, runs_, queue_);
  handed_out_ = static_cast<int>(std::count_if(first_.begin(), first_.end(), [](int r) { return r >= 0; }));
}

int RunQueue::next(int group, const MpiCommunicator& group_comm) {
  int run = -1;
  if (group_comm.rank() == 0) {
    // Rank 0 answers those already waiting before it takes its own next run.
    if (root_) serve();
    run = root_ ? take(group) : ask(group);
  }
  if (group_comm.size() == 1) return run;
  return RequestChannel::broadcast(run, 0, group_comm.comm());
}

int RunQueue::ask(int group) {
  const auto t0 = std::chrono::steady_clock::now();
  const int run = channel_.ask({kNext, group, 0});
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  waits_.asked += 1;
  waits_.total_s += s;
  waits_.max_s = std::max(waits_.max_s, s);
  return run;
}

void RunQueue::leave(int group) {
  if (root_)
    stopping_ = true;
  else
    channel_.tell({kLeave, group, 0});
}

bool RunQueue::serve() {
  if (!root_) return false;
  bool any = false;
  while (auto req = channel_.poll()) {
    any = true;
    if (req->body[0] == kLeave) stopping_ = true;
    if (req->wants_answer) channel_.answer(req->source, take(req->body[1]));
  }
  return any;
}

// Rank 0. A stop signal here, or a group that left, ends the handing out:
// the job is being preempted, and a run started now would only be cut short.
int RunQueue::take(int group) {
  if (stopping_ || stop_signal() != 0) {
    withheld_ = withheld_ || !queue_.empty();
    return -1;
  }
  const int run = take_run(queue_, runs_, layout_.groups.at(static_cast<size_t>(group)).size);
  if (run >= 0) ++handed_out_;
  return run;
}

}  // namespace bs
