#pragma once
// Which world ranks train which runs. Pure and deterministic: every rank
// computes the same layout from the study and the world size, so no message is
// needed to agree on it. Groups are fixed; runs are handed out at run time
// from a shared queue (app/run_queue) in the order planned here, each to the
// first group of its size that is free.
#include <string>
#include <vector>

#include "config/study.h"

namespace bs {

struct GroupPlan {
  int index = 0;
  int first_rank = 0;  // world ranks first_rank .. first_rank + size - 1
  int size = 0;
  // Indices into Study::runs. The first is the group's initial run, exactly as
  // `run` starts it (fresh study); the rest is an estimate: the queue gives
  // them to whichever group finishes first, and this list is where they would
  // go if every run took its planned cost.
  std::vector<int> runs;
};

struct Layout {
  int world_size = 0;
  std::vector<GroupPlan> groups;
  std::vector<int> idle_ranks;

  // -1 for an idle rank.
  int group_of(int world_rank) const;
};

// Forms replica groups of the sizes the runs need (one group per distinct size
// at least; then more groups where the queue per group is longest), and
// estimates the queue's assignment: runs in queue_order, each to the group of
// its size with the least cost so far (ties: the lower group index), which
// gives every group its initial run exactly. cost[i] is any work measure of
// run i (samples to train). Throws LayoutError.
Layout plan_layout(const std::vector<RunSpec>& runs, const std::vector<double>& cost, int world_size);

// How the shared queue treats a run: hands it out before the others (a run
// to resume, so a preempted study finishes its started runs first), in its
// turn, or never (already done).
enum class Handout : char { First, InTurn, Never };

// The queue's order: First runs, then InTurn runs, each part longest planned
// first (cost; missing costs count 1), ties in study order; Never runs left
// out. `handout` may be empty (every run InTurn).
std::vector<int> queue_order(const std::vector<double>& cost, const std::vector<Handout>& handout, size_t runs);

// Removes and returns the first run in `queue` that a group of `group_size`
// ranks trains (a run's ranks are its group's size); -1 when there is none.
int take_run(std::vector<int>& queue, const std::vector<RunSpec>& runs, int group_size);

// Every group's initial run (-1 for a group with none), taken from `queue` in
// group order: the queue's plan that every rank computes alike, so the first
// runs start without a message.
std::vector<int> initial_runs(const Layout& layout, const std::vector<RunSpec>& runs, std::vector<int>& queue);

}  // namespace bs
