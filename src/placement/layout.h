#pragma once
// Which world ranks train which runs. Pure and deterministic: every rank
// computes the same layout from the study and the world size, so no message is
// needed to agree on it, and `batchscope plan` prints exactly what `run` does.
#include <string>
#include <vector>

#include "config/study.h"

namespace bs {

struct GroupPlan {
  int index = 0;
  int first_rank = 0;  // world ranks first_rank .. first_rank + size - 1
  int size = 0;
  std::vector<int> runs;  // indices into Study::runs, in the order the group trains them
};

struct Layout {
  int world_size = 0;
  std::vector<GroupPlan> groups;
  std::vector<int> idle_ranks;

  // -1 for an idle rank.
  int group_of(int world_rank) const;
};

// Forms replica groups of the sizes the runs need (one group per distinct size
// at least; then more groups where the queue per group is longest), and gives
// each run to the group of its size with the least queued cost so far.
// cost[i] is any work measure of run i (samples to train). Throws LayoutError.
Layout plan_layout(const std::vector<RunSpec>& runs, const std::vector<double>& cost, int world_size);

}  // namespace bs
