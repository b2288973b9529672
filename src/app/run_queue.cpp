#include "app/run_queue.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "util/signals.h"

namespace bs {
namespace {

enum Kind : int { kNext = 1, kLeave = 2 };

// A request carries the finished run's time in whole milliseconds (an int:
// up to 24 days per run).
int to_ms(double seconds) { return static_cast<int>(std::min(2.0e9, std::max(0.0, seconds * 1e3))); }

}  // namespace

RunQueue::RunQueue(const Layout& layout, const std::vector<RunSpec>& runs, QueuePlan plan, int world_rank)
    : layout_(layout),
      runs_(runs),
      queue_(std::move(plan.order)),
      resume_(std::move(plan.resume)),
      times_(runs, std::move(plan.cost)),
      root_(world_rank == 0) {
  first_ = initial_runs(layout_, runs_, queue_);
  handed_out_ = static_cast<int>(std::count_if(first_.begin(), first_.end(), [](int r) { return r >= 0; }));
}

int RunQueue::next(int group, const MpiCommunicator& group_comm, const FinishedRun& done) {
  int run = -1;
  if (group_comm.rank() == 0) {
    // Rank 0 answers those already waiting before it takes its own next run.
    if (root_) serve();
    run = root_ ? take(group, done) : ask(group, done);
  }
  if (group_comm.size() == 1) return run;
  return RequestChannel::broadcast(run, 0, group_comm.comm());
}

int RunQueue::ask(int group, const FinishedRun& done) {
  const auto t0 = std::chrono::steady_clock::now();
  const int run = channel_.ask({kNext, group, done.run, to_ms(done.seconds)});
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
    channel_.tell({kLeave, group, -1, 0});
}

bool RunQueue::serve() {
  if (!root_) return false;
  bool any = false;
  while (auto req = channel_.poll()) {
    any = true;
    if (req->body[0] == kLeave) stopping_ = true;
    if (req->wants_answer) channel_.answer(req->source, take(req->body[1], {req->body[2], 1e-3 * req->body[3]}));
  }
  return any;
}

// Rank 0. A stop signal here, or a group that left, ends the handing out:
// the job is being preempted, and a run started now would only be cut short.
int RunQueue::take(int group, const FinishedRun& done) {
  // A resumed run trained only its rest: its time would under-predict its kind.
  const bool resumed =
      done.run >= 0 && static_cast<size_t>(done.run) < resume_.size() && resume_[static_cast<size_t>(done.run)];
  if (!resumed) times_.finished(done.run, done.seconds);
  if (stopping_ || stop_signal() != 0) {
    withheld_ = withheld_ || !queue_.empty();
    return -1;
  }
  const int run = take_longest(queue_, runs_, layout_.groups.at(static_cast<size_t>(group)).size, times_, resume_);
  if (run >= 0) ++handed_out_;
  return run;
}

}  // namespace bs
