#include "placement/layout.h"

#include <algorithm>
#include <map>

#include "util/errors.h"

namespace bs {

int Layout::group_of(int world_rank) const {
  for (const auto& g : groups)
    if (world_rank >= g.first_rank && world_rank < g.first_rank + g.size) return g.index;
  return -1;
}

namespace {

using SizeCount = std::map<int, int, std::greater<int>>;  // ranks per run -> count, largest size first

SizeCount runs_of_size(const std::vector<RunSpec>& runs) {
  SizeCount out;
  for (const auto& r : runs) out[r.ranks()] += 1;
  return out;
}

// One group for each run size is the least a study can run on.
int check_enough_ranks(const SizeCount& runs, int world_size) {
  int needed = 0;
  std::vector<std::string> sizes;
  for (const auto& kv : runs) {
    needed += kv.first;
    sizes.push_back(std::to_string(kv.first));
  }
  if (needed > world_size)
    throw LayoutError("the study needs at least " + std::to_string(needed) +
                      " ranks (one replica group for each run size: " + join(sizes, " + ") +
                      " ranks), but the job has " + std::to_string(world_size) + "; start it with mpirun -np " +
                      std::to_string(needed) + " or more, or give the runs fewer ranks");
  return needed;
}

// Greedy: while ranks are free, add a group where the runs-per-group queue is
// longest and a group would help.
SizeCount groups_of_size(const SizeCount& runs, int free_ranks) {
  SizeCount groups;
  for (const auto& kv : runs) groups[kv.first] = 1;
  for (;;) {
    int best = 0;
    double best_queue = 1.0;
    for (const auto& kv : runs) {
      const int size = kv.first;
      const double queue = static_cast<double>(kv.second) / groups[size];
      if (size <= free_ranks && queue > best_queue) {
        best = size;
        best_queue = queue;
      }
    }
    if (best == 0) return groups;
    groups[best] += 1;
    free_ranks -= best;
  }
}

// Each run goes to the least loaded group of its size, in study order.
void assign_runs(const std::vector<RunSpec>& runs, const std::vector<double>& cost,
                 std::map<int, std::vector<int>>& group_ids_of_size, Layout& layout) {
  std::vector<double> load(layout.groups.size(), 0.0);
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& ids = group_ids_of_size[runs[i].ranks()];
    int pick = ids[0];
    for (int id : ids)
      if (load[id] < load[pick]) pick = id;
    layout.groups[pick].runs.push_back(static_cast<int>(i));
    load[pick] += i < cost.size() ? cost[i] : 1.0;
  }
}

}  // namespace

Layout plan_layout(const std::vector<RunSpec>& runs, const std::vector<double>& cost, int world_size) {
  if (world_size < 1) throw LayoutError("world size must be >= 1");
  const SizeCount runs_per_size = runs_of_size(runs);
  const int needed = check_enough_ranks(runs_per_size, world_size);
  Layout layout;
  layout.world_size = world_size;
  int next_rank = 0;
  std::map<int, std::vector<int>> group_ids_of_size;
  for (const auto& kv : groups_of_size(runs_per_size, world_size - needed))
    for (int k = 0; k < kv.second; ++k) {
      GroupPlan g;
      g.index = static_cast<int>(layout.groups.size());
      g.first_rank = next_rank;
      g.size = kv.first;
      next_rank += kv.first;
      group_ids_of_size[kv.first].push_back(g.index);
      layout.groups.push_back(g);
    }
  for (int r = next_rank; r < world_size; ++r) layout.idle_ranks.push_back(r);
  assign_runs(runs, cost, group_ids_of_size, layout);
  return layout;
}

}  // namespace bs
