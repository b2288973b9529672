#pragma once
// The study's shared run queue. World rank 0 holds it; a group leader that
// finishes a run asks rank 0 for its next one, so no group idles while runs
// of its size remain, however long each run turns out to be (a target stop,
// a slow batch size). Every group's first run is planned alike on every rank
// (placement/layout: initial_runs) and starts without a message.
//
// How rank 0 answers while it trains: MPI is initialized MPI_THREAD_FUNNELED,
// so rank 0 polls (RootConsole::pump, at every drain of its own runs, i.e.
// every log.every_steps steps, between its runs, and while it waits for the
// groups at the end). A service thread would need MPI_THREAD_MULTIPLE, which
// makes every MPI call of every rank pay for locking, and a thread that takes
// a core from the trainer on a node whose cores are all in use; the polling
// latency is one drain interval (a few ms to a few hundred ms), small beside
// a run of thousands of steps. The summary prints the measured waits.
#include <vector>

#include "comm/mpi_communicator.h"
#include "comm/request_channel.h"
#include "config/study.h"
#include "placement/layout.h"
#include "placement/run_times.h"

namespace bs {

// A group leader's waits for the queue's answers; rank 0 takes its own runs
// without a message and counts none.
struct QueueWaits {
  int asked = 0;
  double total_s = 0, max_s = 0;
};

// What the queue starts from, alike on every rank.
struct QueuePlan {
  std::vector<int> order;    // the runs to hand out, in order (placement/layout: queue_order)
  std::vector<double> cost;  // per run: planned work (app/study_runner: run_costs)
  std::vector<bool> resume;  // per run: to resume (handed out first; its time teaches nothing)
};

// A group's run that just ended, and how long it took (leader's clock).
struct FinishedRun {
  int run = -1;
  double seconds = 0;
};

class RunQueue {
 public:
  // Collective over the world (the channel's communicator). Every rank takes
  // each group's first run from plan.order here, alike.
  RunQueue(const Layout& layout, const std::vector<RunSpec>& runs, QueuePlan plan, int world_rank);

  int first_run(int group) const { return first_[static_cast<size_t>(group)]; }
  // Collective over the group: its next run, or -1 when none of its size is
  // left or the study is stopping. The leader asks rank 0 (rank 0, a leader
  // too, answers the others waiting first, then takes its own), and tells the
  // group's other ranks. `done`: the run the group just finished (the
  // leader's), which rank 0 learns from.
  int next(int group, const MpiCommunicator& group_comm, const FinishedRun& done);
  // A group leader whose group stopped (a stop signal): rank 0 hands out no
  // more runs, to any group; they stay unstarted for --resume.
  void leave(int group);
  // Rank 0: answers the requests that have arrived, without blocking; returns
  // whether there were any. Elsewhere nothing.
  bool serve();
  // Rank 0: whether it refused a run that was still queued (the study stops
  // unfinished, and the job exits kExitPreempted).
  bool withheld() const { return withheld_; }
  // Rank 0: runs handed out so far, every group's first run included.
  int handed_out() const { return handed_out_; }
  const QueueWaits& waits() const { return waits_; }

 private:
  int take(int group, const FinishedRun& done);
  int ask(int group, const FinishedRun& done);

  const Layout& layout_;
  const std::vector<RunSpec>& runs_;
  std::vector<int> queue_;  // rank 0: what is left to hand out, in order
  std::vector<bool> resume_;
  RunTimes times_;          // rank 0: what the finished runs took
  std::vector<int> first_;  // per group
  bool root_;
  bool stopping_ = false, withheld_ = false;
  int handed_out_ = 0;
  QueueWaits waits_;
  RequestChannel channel_;
};

}  // namespace bs
