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

double cost_of(const std::vector<double>& cost, int run) {
  return static_cast<size_t>(run) < cost.size() ? cost[static_cast<size_t>(run)] : 1.0;
}

// The queue's assignment if every run took its planned cost: in queue order,
// each run to the group of its size that is free first (one with no run yet,
// else the least loaded; ties: the lower index). Every group's first run is
// the one `run` starts it with (initial_runs); the rest is an estimate.
void assign_runs(const std::vector<RunSpec>& runs, const std::vector<double>& cost,
                 std::map<int, std::vector<int>>& group_ids_of_size, Layout& layout) {
  std::vector<double> load(layout.groups.size(), 0.0);
  auto freer = [&](int a, int b) {
    const bool idle_a = layout.groups[a].runs.empty(), idle_b = layout.groups[b].runs.empty();
    return idle_a != idle_b ? idle_a : load[a] < load[b];
  };
  for (int i : queue_order(cost, {}, runs.size())) {
    const auto& ids = group_ids_of_size[runs[static_cast<size_t>(i)].ranks()];
    int pick = ids[0];
    for (int id : ids)
      if (freer(id, pick)) pick = id;
    layout.groups[pick].runs.push_back(i);
    load[pick] += cost_of(cost, i);
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

std::vector<int> queue_order(const std::vector<double>& cost, const std::vector<Handout>& handout, size_t runs) {
  auto how = [&handout](int i) {
    return static_cast<size_t>(i) < handout.size() ? handout[static_cast<size_t>(i)] : Handout::InTurn;
  };
  std::vector<int> order;
  for (int i = 0; i < static_cast<int>(runs); ++i)
    if (how(i) != Handout::Never) order.push_back(i);
  // Stable: equal keys keep study order.
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    if (how(a) != how(b)) return how(a) == Handout::First;
    return cost_of(cost, a) > cost_of(cost, b);
  });
  return order;
}

int take_run(std::vector<int>& queue, const std::vector<RunSpec>& runs, int group_size) {
  for (auto it = queue.begin(); it != queue.end(); ++it)
    if (runs[static_cast<size_t>(*it)].ranks() == group_size) {
      const int run = *it;
      queue.erase(it);
      return run;
    }
  return -1;
}

std::vector<int> initial_runs(const Layout& layout, const std::vector<RunSpec>& runs, std::vector<int>& queue) {
  std::vector<int> first;
  for (const auto& g : layout.groups) first.push_back(take_run(queue, runs, g.size));
  return first;
}

}  // namespace bs
