#include "placement/run_times.h"

#include <algorithm>
#include <utility>

namespace bs {

RunTimes::RunTimes(const std::vector<RunSpec>& runs, std::vector<double> cost) : cost_(std::move(cost)) {
  // Kinds in study order; a study has at most a few hundred runs, so the
  // quadratic search stays far below a millisecond.
  std::vector<size_t> first_of_kind;
  for (size_t i = 0; i < runs.size(); ++i) {
    size_t k = 0;
    while (k < first_of_kind.size() && runs[first_of_kind[k]].batch_per_rank != runs[i].batch_per_rank) ++k;
    if (k == first_of_kind.size()) first_of_kind.push_back(i);
    kind_.push_back(static_cast<int>(k));
  }
  rate_sum_.assign(first_of_kind.size(), 0.0);
  finished_.assign(first_of_kind.size(), 0);
}

double RunTimes::cost(int run) const {
  const auto i = static_cast<size_t>(run);
  return i < cost_.size() && cost_[i] > 0 ? cost_[i] : 1.0;
}

void RunTimes::finished(int run, double seconds) {
  if (run < 0 || static_cast<size_t>(run) >= kind_.size() || !(seconds >= 0)) return;
  const auto k = static_cast<size_t>(kind_[static_cast<size_t>(run)]);
  rate_sum_[k] += seconds / cost(run);
  finished_[k] += 1;
}

std::optional<double> RunTimes::predict(int run) const {
  const auto k = static_cast<size_t>(kind_.at(static_cast<size_t>(run)));
  if (finished_[k] == 0) return std::nullopt;
  return cost(run) * rate_sum_[k] / finished_[k];
}

int take_longest(std::vector<int>& queue, const std::vector<RunSpec>& runs, int group_size, const RunTimes& times,
                 const std::vector<bool>& pinned) {
  auto is_pinned = [&pinned](int r) {
    return static_cast<size_t>(r) < pinned.size() && pinned[static_cast<size_t>(r)];
  };
  auto best = queue.end();
  std::optional<double> best_time;
  for (auto it = queue.begin(); it != queue.end(); ++it) {
    if (runs[static_cast<size_t>(*it)].ranks() != group_size) continue;
    if (is_pinned(*it)) {
      best = it;
      break;
    }
    const std::optional<double> t = times.predict(*it);
    const bool longer = best == queue.end() || (best_time && (!t || *t > *best_time));
    if (longer) {
      best = it;
      best_time = t;
    }
  }
  if (best == queue.end()) return -1;
  const int run = *best;
  queue.erase(best);
  return run;
}

}  // namespace bs
