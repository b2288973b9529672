// Rank layout: replica groups, the run queue's order and its estimate of
// which group trains what.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/study.h"
#include "placement/layout.h"
#include "placement/run_times.h"
#include "util/errors.h"

namespace bs {
namespace {

RunSpec run_of(const std::string& name, std::vector<int64_t> batch) {
  RunSpec r;
  r.name = name;
  r.batch_per_rank = std::move(batch);
  r.lr = 0.1;
  return r;
}

std::vector<RunSpec> runs_with_ranks(const std::vector<int>& ranks) {
  std::vector<RunSpec> runs;
  for (size_t i = 0; i < ranks.size(); ++i)
    runs.push_back(run_of("r" + std::to_string(i), std::vector<int64_t>(static_cast<size_t>(ranks[i]), 16)));
  return runs;
}

// Structural invariants every layout must satisfy.
void check_layout(const Layout& L, const std::vector<RunSpec>& runs, int world) {
  EXPECT_EQ(L.world_size, world);
  // Groups are contiguous, disjoint, start at 0, and are followed by the idle ranks.
  int next = 0;
  for (size_t g = 0; g < L.groups.size(); ++g) {
    EXPECT_EQ(L.groups[g].index, static_cast<int>(g));
    EXPECT_EQ(L.groups[g].first_rank, next);
    EXPECT_GE(L.groups[g].size, 1);
    next += L.groups[g].size;
  }
  std::vector<int> expect_idle;
  for (int r = next; r < world; ++r) expect_idle.push_back(r);
  EXPECT_EQ(L.idle_ranks, expect_idle);
  EXPECT_LE(next, world);
  // Every run assigned exactly once, to a group of its size.
  std::vector<int> seen;
  for (const auto& g : L.groups)
    for (int ri : g.runs) {
      seen.push_back(ri);
      ASSERT_GE(ri, 0);
      ASSERT_LT(ri, static_cast<int>(runs.size()));
      EXPECT_EQ(runs[static_cast<size_t>(ri)].ranks(), g.size) << "run " << ri << " in group " << g.index;
    }
  std::sort(seen.begin(), seen.end());
  std::vector<int> all(runs.size());
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(seen, all);
  // group_of agrees with the groups.
  for (int r = 0; r < world; ++r) {
    int g = L.group_of(r);
    if (g < 0) {
      EXPECT_NE(std::find(L.idle_ranks.begin(), L.idle_ranks.end(), r), L.idle_ranks.end());
    } else {
      EXPECT_GE(r, L.groups[static_cast<size_t>(g)].first_rank);
      EXPECT_LT(r, L.groups[static_cast<size_t>(g)].first_rank + L.groups[static_cast<size_t>(g)].size);
    }
  }
}

TEST(PlanLayout, TooFewRanksNamesNeededCountAndHint) {
  auto runs = runs_with_ranks({2, 2, 2});
  try {
    plan_layout(runs, {}, 1);
    FAIL() << "expected LayoutError";
  } catch (const LayoutError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("needs at least 2 ranks"), std::string::npos) << m;
    EXPECT_NE(m.find("the job has 1"), std::string::npos) << m;
    EXPECT_NE(m.find("mpirun -np 2"), std::string::npos) << m;
  }
  // Mixed sizes need one group of each size: 4 + 2 + 1 = 7.
  auto mixed = runs_with_ranks({1, 2, 4, 2, 1});
  try {
    plan_layout(mixed, {}, 6);
    FAIL() << "expected LayoutError";
  } catch (const LayoutError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("needs at least 7 ranks"), std::string::npos) << m;
    EXPECT_NE(m.find("4 + 2 + 1"), std::string::npos) << m;
    EXPECT_NE(m.find("mpirun -np 7"), std::string::npos) << m;
  }
  EXPECT_NO_THROW(plan_layout(mixed, {}, 7));
  EXPECT_THROW(plan_layout(runs, {}, 0), LayoutError);
}

TEST(PlanLayout, FourRanksThreeTwoRankRuns) {
  auto runs = runs_with_ranks({2, 2, 2});
  Layout L = plan_layout(runs, {1, 1, 1}, 4);
  check_layout(L, runs, 4);
  ASSERT_EQ(L.groups.size(), 2u);
  EXPECT_EQ(L.groups[0].first_rank, 0);
  EXPECT_EQ(L.groups[1].first_rank, 2);
  EXPECT_EQ(L.groups[0].size, 2);
  EXPECT_EQ(L.groups[1].size, 2);
  EXPECT_TRUE(L.idle_ranks.empty());
  // Balanced: queue lengths 2 and 1.
  const size_t q0 = L.groups[0].runs.size(), q1 = L.groups[1].runs.size();
  EXPECT_EQ(q0 + q1, 3u);
  EXPECT_LE(std::max(q0, q1) - std::min(q0, q1), 1u);
  EXPECT_EQ(L.group_of(0), 0);
  EXPECT_EQ(L.group_of(1), 0);
  EXPECT_EQ(L.group_of(2), 1);
  EXPECT_EQ(L.group_of(3), 1);
  EXPECT_EQ(L.group_of(4), -1);
  EXPECT_EQ(L.group_of(-1), -1);
}

TEST(PlanLayout, OneGroupPerRunWhenRanksSuffice) {
  auto runs = runs_with_ranks({2, 2, 2});
  Layout L = plan_layout(runs, {}, 6);
  check_layout(L, runs, 6);
  ASSERT_EQ(L.groups.size(), 3u);
  for (const auto& g : L.groups) EXPECT_EQ(g.runs.size(), 1u);
}

TEST(PlanLayout, MixedRunSizesGetGroupsOfEachSize) {
  auto runs = runs_with_ranks({1, 2, 1, 2, 1});
  for (int world : {3, 4, 5, 8}) {
    SCOPED_TRACE("world " + std::to_string(world));
    Layout L = plan_layout(runs, {}, world);
    check_layout(L, runs, world);
    int ones = 0, twos = 0;
    for (const auto& g : L.groups) {
      if (g.size == 1) ++ones;
      if (g.size == 2) ++twos;
    }
    EXPECT_GE(ones, 1);
    EXPECT_GE(twos, 1);
  }
  // At world 5: one 2-rank group (ranks 0-1), three 1-rank groups for the three 1-rank runs.
  Layout L = plan_layout(runs, {}, 5);
  ASSERT_EQ(L.groups.size(), 4u);
  EXPECT_EQ(L.groups[0].size, 2);
  EXPECT_EQ(L.groups[0].runs, (std::vector<int>{1, 3}));
  for (size_t g = 1; g < 4; ++g) {
    EXPECT_EQ(L.groups[g].size, 1);
    EXPECT_EQ(L.groups[g].runs.size(), 1u);
  }
}

TEST(PlanLayout, IdleRanksListed) {
  // Two 2-rank runs on 7 ranks: two groups (4 ranks); a third group would have nothing to do.
  auto runs = runs_with_ranks({2, 2});
  Layout L = plan_layout(runs, {}, 7);
  check_layout(L, runs, 7);
  ASSERT_EQ(L.groups.size(), 2u);
  EXPECT_EQ(L.idle_ranks, (std::vector<int>{4, 5, 6}));
  EXPECT_EQ(L.group_of(5), -1);
  EXPECT_EQ(L.group_of(3), 1);
  // A 3-rank run on 4 ranks leaves one rank idle.
  auto three = runs_with_ranks({3});
  Layout L3 = plan_layout(three, {}, 4);
  check_layout(L3, three, 4);
  EXPECT_EQ(L3.idle_ranks, (std::vector<int>{3}));
}

TEST(PlanLayout, EveryRunAssignedExactlyOnceAcrossManyShapes) {
  const std::vector<std::vector<int>> shapes{
      {1}, {1, 1, 1, 1, 1, 1, 1}, {2, 1, 2, 1}, {4, 4, 1, 2, 2, 2, 1, 1}, {3, 3, 3, 3, 3}};
  for (const auto& shape : shapes) {
    auto runs = runs_with_ranks(shape);
    int needed = 0;
    for (int s : {1, 2, 3, 4})
      if (std::count(shape.begin(), shape.end(), s)) needed += s;
    for (int world = needed; world <= needed + 9; ++world) {
      SCOPED_TRACE("world " + std::to_string(world) + " runs " + std::to_string(shape.size()));
      std::vector<double> cost;
      for (size_t i = 0; i < shape.size(); ++i) cost.push_back(1.0 + static_cast<double>(i % 3));
      check_layout(plan_layout(runs, cost, world), runs, world);
    }
  }
}

TEST(PlanLayout, CostBalancing) {
  // One big run (cost 10) and ten small ones (cost 1), one rank each, two
  // ranks: the big run gets a group to itself, the ten small ones the other.
  std::vector<RunSpec> runs;
  std::vector<double> cost;
  runs.push_back(run_of("big", {64}));
  cost.push_back(10.0);
  for (int i = 0; i < 10; ++i) {
    runs.push_back(run_of("small" + std::to_string(i), {64}));
    cost.push_back(1.0);
  }
  Layout L = plan_layout(runs, cost, 2);
  check_layout(L, runs, 2);
  ASSERT_EQ(L.groups.size(), 2u);
  EXPECT_EQ(L.groups[0].runs, (std::vector<int>{0}));
  EXPECT_EQ(L.groups[1].runs.size(), 10u);

  // Three groups, costs spread: the largest queued cost stays within one run's
  // cost of the smallest.
  std::vector<double> c2{8, 1, 1, 1, 1, 4, 4, 2, 2, 1, 1};
  Layout L2 = plan_layout(runs, c2, 3);
  check_layout(L2, runs, 3);
  ASSERT_EQ(L2.groups.size(), 3u);
  std::vector<double> load;
  for (const auto& g : L2.groups) {
    double s = 0;
    for (int ri : g.runs) s += c2[static_cast<size_t>(ri)];
    load.push_back(s);
  }
  const double maxc = *std::max_element(c2.begin(), c2.end());
  EXPECT_LE(*std::max_element(load.begin(), load.end()) - *std::min_element(load.begin(), load.end()), maxc);
  EXPECT_DOUBLE_EQ(std::accumulate(load.begin(), load.end(), 0.0), std::accumulate(c2.begin(), c2.end(), 0.0));
}

TEST(QueueOrder, LongestFirstTiesInStudyOrderResumeAheadDoneLeftOut) {
  EXPECT_EQ(queue_order({1, 3, 2, 3}, {}, 4), (std::vector<int>{1, 3, 2, 0}));
  EXPECT_EQ(queue_order({}, {}, 3), (std::vector<int>{0, 1, 2}));  // missing costs count 1
  const std::vector<Handout> how{Handout::InTurn, Handout::Never, Handout::First, Handout::InTurn, Handout::First};
  EXPECT_EQ(queue_order({5, 9, 1, 7, 2}, how, 5), (std::vector<int>{4, 2, 3, 0}));
}

TEST(QueueOrder, TakeRunPicksTheFirstOfTheGroupsSize) {
  auto runs = runs_with_ranks({2, 1, 2, 1});
  std::vector<int> queue{3, 0, 2, 1};
  EXPECT_EQ(take_run(queue, runs, 2), 0);
  EXPECT_EQ(take_run(queue, runs, 1), 3);
  EXPECT_EQ(take_run(queue, runs, 4), -1);
  EXPECT_EQ(queue, (std::vector<int>{2, 1}));
  EXPECT_EQ(take_run(queue, runs, 2), 2);
  EXPECT_EQ(take_run(queue, runs, 2), -1);
  EXPECT_EQ(queue, (std::vector<int>{1}));
}

TEST(QueueOrder, InitialRunsAreThePlansFirstRuns) {
  // The plan's estimate starts every group with the run `run` gives it first.
  auto runs = runs_with_ranks({1, 2, 1, 1, 2, 1, 1});
  const std::vector<double> cost{3, 5, 1, 4, 5, 9, 2};
  for (int world : {3, 4, 5, 7, 9}) {
    SCOPED_TRACE("world " + std::to_string(world));
    Layout L = plan_layout(runs, cost, world);
    std::vector<int> queue = queue_order(cost, {}, runs.size());
    const std::vector<int> first = initial_runs(L, runs, queue);
    ASSERT_EQ(first.size(), L.groups.size());
    for (size_t g = 0; g < first.size(); ++g) {
      if (L.groups[g].runs.empty()) {
        EXPECT_EQ(first[g], -1);
      } else {
        EXPECT_EQ(first[g], L.groups[g].runs[0]);
      }
    }
    EXPECT_EQ(queue.size() + L.groups.size(),
              runs.size() + static_cast<size_t>(std::count(first.begin(), first.end(), -1)));
  }
}

TEST(QueueOrder, EstimateIsLongestFirstToTheFreeGroup) {
  // Two one-rank groups, costs 4 3 3 2 2: 4 -> g0, 3 -> g1, 3 -> g1 (3 < 4),
  // 2 -> g0 (4 < 6), 2 -> g0 (6 = 6: the lower index).
  auto runs = runs_with_ranks({1, 1, 1, 1, 1});
  Layout L = plan_layout(runs, {2, 3, 4, 3, 2}, 2);
  EXPECT_EQ(L.groups[0].runs, (std::vector<int>{2, 0, 4}));
  EXPECT_EQ(L.groups[1].runs, (std::vector<int>{1, 3}));
}

TEST(RunTimes, PredictsFromItsKindsFinishedRunsScaledByCost) {
  // Kinds: batches {32} (runs 0, 1, 3) and {16, 16} (run 2).
  std::vector<RunSpec> runs{run_of("a", {32}), run_of("b", {32}), run_of("c", {16, 16}), run_of("d", {32})};
  RunTimes t(runs, {100, 100, 100, 200});
  EXPECT_FALSE(t.predict(0));
  t.finished(0, 2.0);
  t.finished(1, 4.0);
  ASSERT_TRUE(t.predict(3));
  EXPECT_DOUBLE_EQ(*t.predict(3), 6.0);  // mean 0.03 s per unit x 200
  EXPECT_DOUBLE_EQ(*t.predict(0), 3.0);
  EXPECT_FALSE(t.predict(2));  // the same global batch, another kind
  t.finished(-1, 1.0);         // no run: ignored
  t.finished(2, std::nan(""));
  EXPECT_FALSE(t.predict(2));
}

TEST(RunTimes, TakeLongestPinnedThenUnknownKindsThenLongest) {
  std::vector<RunSpec> runs{run_of("a", {16}), run_of("b", {32}), run_of("c", {64}),  run_of("d", {16}),
                            run_of("e", {32}), run_of("f", {64}), run_of("g", {8, 8})};
  RunTimes t(runs, {});
  std::vector<int> queue{3, 1, 4, 2, 5, 6};
  const std::vector<bool> pinned{false, false, false, false, false, true, false};
  EXPECT_EQ(take_longest(queue, runs, 1, t, pinned), 5);  // to resume: first, wherever it is
  EXPECT_EQ(take_longest(queue, runs, 1, t, {}), 3);      // nothing known: queue order
  t.finished(3, 1.0);                                     // kind {16}: 1 s
  EXPECT_EQ(take_longest(queue, runs, 1, t, {}), 1);      // {32} unknown: before anything known
  t.finished(1, 5.0);                                     // {32}: 5 s
  t.finished(0, 9.0);                                     // {16}: mean 5 s, a tie with {32}
  EXPECT_EQ(take_longest(queue, runs, 1, t, {}), 2);      // {64} still unknown
  t.finished(2, 0.5);
  EXPECT_EQ(take_longest(queue, runs, 1, t, {}), 4);   // {32} 5 s > {64} 0.5 s
  EXPECT_EQ(take_longest(queue, runs, 1, t, {}), -1);  // only a 2-rank run left
  EXPECT_EQ(take_longest(queue, runs, 2, t, {}), 6);
  EXPECT_TRUE(queue.empty());
}

// Two one-rank groups hand out runs with known durations (seconds, in study
// order, 4 lrs per batch from 16 up); returns the makespan.
double makespan(const std::vector<double>& secs, bool learn) {
  std::vector<RunSpec> runs;
  for (size_t i = 0; i < secs.size(); ++i) runs.push_back(run_of("r" + std::to_string(i), {int64_t{16} << (i / 4)}));
  RunTimes times(runs, {});
  std::vector<int> queue(secs.size());
  std::iota(queue.begin(), queue.end(), 0);
  std::vector<double> end(2, 0.0);
  std::vector<int> running(2, -1);
  for (size_t g = 0; g < 2; ++g) {
    running[g] = take_run(queue, runs, 1);
    end[g] = secs[static_cast<size_t>(running[g])];
  }
  while (!queue.empty()) {
    const size_t g = end[0] <= end[1] ? 0 : 1;
    times.finished(running[g], secs[static_cast<size_t>(running[g])]);
    running[g] = learn ? take_longest(queue, runs, 1, times, {}) : take_run(queue, runs, 1);
    end[g] += secs[static_cast<size_t>(running[g])];
  }
  return std::max(end[0], end[1]);
}

TEST(RunTimes, LearnedOrderEndsTheStudyOnShortRuns) {
  // configs/bench/sweep32.yaml's run times as measured on 2 one-rank groups
  // (run files' wall_s, 0.1 s): the planned order (all costs equal, so study
  // order) hands out the 5 s runs of batch 2048 last.
  const std::vector<double> secs{2.3, 1.7, 2.3, 13.7, 1.5, 1.2, 1.2, 6.6, 2.0, 1.1, 0.8, 1.2, 1.9, 1.0, 0.8, 1.0,
                                 2.8, 1.2, 0.8, 0.7,  3.2, 1.7, 1.4, 0.8, 5.0, 1.8, 1.5, 1.3, 5.0, 2.6, 2.0, 4.9};
  const double total = std::accumulate(secs.begin(), secs.end(), 0.0);  // 77.0
  EXPECT_NEAR(makespan(secs, false), 40.9, 1e-9);                       // 5.9% of 2 x 40.9 idle
  EXPECT_NEAR(makespan(secs, true), 38.7, 1e-9);                        // 0.5%
  EXPECT_GE(makespan(secs, true), total / 2 - 1e-9);
}

}  // namespace
}  // namespace bs
