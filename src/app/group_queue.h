#pragma once
// One replica group's share of the study: its first run, then whatever the
// shared run queue (app/run_queue.h) hands it, trained on every rank of the
// group. The leader (group rank 0) writes the run files and checkpoints and
// reports each run to the console; the other ranks only train.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "app/replica_group.h"
#include "app/root_console.h"
#include "app/run_actions.h"
#include "app/run_header.h"
#include "app/run_queue.h"
#include "config/study.h"
#include "trace/run_file.h"
#include "train/trainer.h"

namespace bs {

class GroupQueue {
 public:
  // `index`: the group's index in the layout.
  GroupQueue(const Study& study, const std::vector<RunAction>& actions, ReplicaGroup& group, int index,
             GroupPlacement placement, RootConsole& console, RunQueue& queue);
  // Trains runs until the queue has none left for the group. Returns true
  // when the group stopped early: a stop signal between runs, or a preempted
  // run; then it takes no more runs, and tells the queue so.
  bool run();
  // The leader's report for the summary.
  GroupReport report() const;

 private:
  bool group_wants_stop();
  // Trains one run; adds its time to busy_s_ and keeps it in last_. Returns true when it was preempted.
  bool train_timed(int run);
  RunResult train(const RunSpec& run, RunAction action);
  RunResult train_and_record(const RunSpec& run, const TrainState* resume);
  std::unique_ptr<RunFile> open_run_file(const RunSpec& run, const RunBudget& budget, const TrainState* resume);

  const Study& st_;
  const std::vector<RunAction>& actions_;
  ReplicaGroup& group_;
  int index_;
  GroupPlacement placement_;
  RootConsole& console_;
  RunQueue& queue_;
  double busy_s_ = 0;
  FinishedRun last_;  // the run just trained, for the queue to learn from
  // The model and data files' digests, read once per queue by its leader (a
  // data file may be gigabytes) when its first run starts.
  std::optional<Fingerprint> files_;
};

}  // namespace bs
