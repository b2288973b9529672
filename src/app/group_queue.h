#pragma once
// One replica group's queue of runs, trained in order on every rank of the
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
#include "config/study.h"
#include "trace/run_file.h"
#include "train/trainer.h"

namespace bs {

class GroupQueue {
 public:
  GroupQueue(const Study& study, const std::vector<RunAction>& actions, ReplicaGroup& group, GroupPlacement placement,
             RootConsole& console);
  // Trains the runs (indices into study.runs). Returns true when the queue
  // stopped early: a stop signal between runs, or a preempted run.
  bool run(const std::vector<int>& runs);

 private:
  bool group_wants_stop();
  RunResult train(const RunSpec& run, RunAction action);
  RunResult train_and_record(const RunSpec& run, const TrainState* resume);
  std::unique_ptr<RunFile> open_run_file(const RunSpec& run, const RunBudget& budget, const TrainState* resume);

  const Study& st_;
  const std::vector<RunAction>& actions_;
  ReplicaGroup& group_;
  GroupPlacement placement_;
  RootConsole& console_;
  // The model and data files' digests, read once per queue by its leader (a
  // data file may be gigabytes) when its first run starts.
  std::optional<Fingerprint> files_;
};

}  // namespace bs
