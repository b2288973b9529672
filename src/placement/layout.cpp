#include "placement/layout.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "util/errors.h"

namespace bs {

int Layout::group_of(int world_rank) const {
  for (const auto& g : groups)
    if (world_rank >= g.first_rank && world_rank < g.first_rank + g.size) return g.index;
  return -1;
}

Layout plan_layout(const std::vector<RunSpec>& runs, const std::vector<double>& cost, int world_size) {
  if (world_size < 1) throw LayoutError("world size must be >= 1");
  std::map<int, int, std::greater<int>> runs_of_size;  // largest size first
  for (const auto& r : runs) runs_of_size[r.ranks()] += 1;

  int needed = 0;
  std::vector<std::string> sizes;
  for (auto& kv : runs_of_size) {
    needed += kv.first;
    sizes.push_back(std::to_string(kv.first));
  }
  if (needed > world_size)
    throw LayoutError("the study needs at least " + std::to_string(needed) +
                      " ranks (one replica group for each run size: " + join(sizes, " + ") +
                      " ranks), but the job has " + std::to_string(world_size) +
                      "; start it with mpirun -np " + std::to_string(needed) +
                      " or more, or give the runs fewer ranks");

  std::map<int, int, std::greater<int>> groups_of_size;
  for (auto& kv : runs_of_size) groups_of_size[kv.first] = 1;
  int free_ranks = world_size - needed;
  for (;;) {
    // Add a group where the runs-per-group queue is longest and it would help.
    int best = 0;
    double best_queue = 1.0;
    for (auto& kv : runs_of_size) {
      int size = kv.first;
      double queue = static_cast<double>(kv.second) / groups_of_size[size];
      if (size <= free_ranks && queue > best_queue) {
        best = size;
        best_queue = queue;
      }
    }
    if (best == 0) break;
    groups_of_size[best] += 1;
    free_ranks -= best;
  }

  Layout layout;
  layout.world_size = world_size;
  int next_rank = 0;
  std::map<int, std::vector<int>> group_ids_of_size;
  for (auto& kv : groups_of_size)
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

  std::vector<double> load(layout.groups.size(), 0.0);
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& ids = group_ids_of_size[runs[i].ranks()];
    int pick = ids[0];
    for (int id : ids)
      if (load[id] < load[pick]) pick = id;
    layout.groups[pick].runs.push_back(static_cast<int>(i));
    load[pick] += i < cost.size() ? cost[i] : 1.0;
  }
  return layout;
}

std::string describe_layout(const Study& study, const Layout& layout) {
  std::ostringstream os;
  os << "study '" << study.name << "': " << study.runs.size() << " runs on " << layout.world_size
     << " ranks in " << layout.groups.size() << " replica groups\n";
  for (const auto& g : layout.groups) {
    os << "group " << g.index << ": world ranks " << g.first_rank << ".." << g.first_rank + g.size - 1 << "\n";
    for (int ri : g.runs) {
      const auto& r = study.runs[static_cast<size_t>(ri)];
      RunBudget rb = run_budget(study, r);
      char lr[64];
      std::snprintf(lr, sizeof lr, "%g (base %g, %s scaling)", rb.peak_lr, r.lr, study.optimizer.scaling.c_str());
      os << "  run " << r.name << ": global batch " << r.global_batch() << ", lr " << lr << ", seed " << r.seed
         << ", " << rb.total_steps << " steps\n";
      for (int i = 0; i < r.ranks(); ++i)
        os << "    world rank " << g.first_rank + i << ": batch " << r.batch_per_rank[static_cast<size_t>(i)]
           << "\n";
    }
  }
  if (!layout.idle_ranks.empty()) {
    os << "idle ranks (no group of their size has work):";
    for (int r : layout.idle_ranks) os << " " << r;
    os << "\n";
  }
  return os.str();
}

}  // namespace bs
