#pragma once
// What the shared run queue (app/run_queue) learns while a study runs: how
// long finished runs took, per kind of run, so that it hands out the runs
// expected to last longest first and the short ones last.
//
// Why: a group that finishes while the others still train, with no run of
// its size left, idles until the study ends, so the queue's tail should be
// short runs. The planned cost (samples to train) cannot say which runs are
// short: in an epoch budget it is the same for every run, and a target stop
// ends runs at steps nobody knows in advance. Runs of one kind (the same
// per-rank batches; other lrs and seeds) train at the same speed per step, and
// in a sweep they tend to stop alike, so the mean of a kind's finished runs
// predicts its next one. Kinds with no finished run yet go out first, in queue
// order: one of them may be the longest, and each one that finishes teaches
// the queue about the rest of its kind. On configs/bench/sweep32.yaml's
// measured run times this ordering leaves 0.3-0.9% of the rank-time idle in
// simulation, against 5.5-5.8% for the planned order (docs/architecture.md,
// "The run queue").
//
// Pure and deterministic; world rank 0 alone uses it. Which group trains a
// run never changes its numbers, so neither does this order.
#include <optional>
#include <vector>

#include "config/study.h"

namespace bs {

class RunTimes {
 public:
  // cost[i]: run i's planned work (samples to train; missing or non-positive
  // counts 1), used to scale a kind's seconds to a run of another budget.
  RunTimes(const std::vector<RunSpec>& runs, std::vector<double> cost);
  // Run `run` trained from its start to its end in `seconds`. (A resumed run
  // trained only part of itself and should not be reported.)
  void finished(int run, double seconds);
  // Expected seconds: the run's cost times the mean seconds per unit of cost
  // of its kind's finished runs; nullopt when none has finished.
  std::optional<double> predict(int run) const;

 private:
  double cost(int run) const;

  std::vector<double> cost_;
  std::vector<int> kind_;         // per run: index into the sums below
  std::vector<double> rate_sum_;  // per kind: sum of seconds / cost
  std::vector<int> finished_;     // per kind: how many
};

// Removes and returns the queued run that a group of `group_size` ranks
// should train next (-1 when none of that size is left): the first in queue
// order of those marked `pinned` (runs to resume), else the first of a kind
// with no prediction, else the one predicted longest (ties: queue order).
int take_longest(std::vector<int>& queue, const std::vector<RunSpec>& runs, int group_size, const RunTimes& times,
                 const std::vector<bool>& pinned);

}  // namespace bs
