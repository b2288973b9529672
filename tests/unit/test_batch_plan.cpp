// The batch plan: which samples each rank trains on at each step.
#include <algorithm>
#include <numeric>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "data/batch_plan.h"

namespace bs {
namespace {

constexpr int64_t kN = 1000;

// Samples rank `rank` takes at 0-based step `step0`.
std::vector<int64_t> slice(const BatchPlan& plan, int64_t step0, int rank) {
  auto perm = plan.epoch_permutation(plan.epoch_of(step0));
  const int64_t off = plan.offset(step0, rank);
  return std::vector<int64_t>(perm.begin() + off, perm.begin() + off + plan.length(rank));
}

TEST(BatchPlan, Basics) {
  BatchPlan plan(kN, {16, 48}, 7, 3);
  EXPECT_EQ(plan.global_batch(), 64);
  EXPECT_EQ(plan.steps_per_epoch(), 15);  // floor(1000 / 64)
  EXPECT_EQ(plan.length(0), 16);
  EXPECT_EQ(plan.length(1), 48);
  EXPECT_EQ(plan.offset(0, 0), 0);
  EXPECT_EQ(plan.offset(0, 1), 16);
  EXPECT_EQ(plan.offset(2, 1), 2 * 64 + 16);
}

TEST(BatchPlan, RankSlicesTileTheStepWindowExactly) {
  const std::vector<std::vector<int64_t>> splits{{64}, {16, 48}, {10, 20, 30, 4}, {1, 1, 1}, {333}};
  for (const auto& split : splits) {
    BatchPlan plan(kN, split, 1, 2);
    const int64_t B = plan.global_batch();
    for (int64_t k = 0; k < 3 * plan.steps_per_epoch(); ++k) {
      std::vector<std::pair<int64_t, int64_t>> iv;
      for (int r = 0; r < static_cast<int>(split.size()); ++r) iv.push_back({plan.offset(k, r), plan.length(r)});
      std::sort(iv.begin(), iv.end());
      const int64_t k_in_epoch = k % plan.steps_per_epoch();
      int64_t pos = k_in_epoch * B;
      for (auto& [start, len] : iv) {
        ASSERT_EQ(start, pos) << "gap or overlap at step " << k;
        pos += len;
      }
      ASSERT_EQ(pos, (k_in_epoch + 1) * B);
      ASSERT_LE(pos, kN) << "a step window must lie inside the training set";
    }
  }
}

TEST(BatchPlan, RankOffsetsFollowRankOrder) {
  BatchPlan plan(kN, {10, 20, 30, 4}, 1, 2);
  EXPECT_EQ(plan.offset(5, 0), 5 * 64 + 0);
  EXPECT_EQ(plan.offset(5, 1), 5 * 64 + 10);
  EXPECT_EQ(plan.offset(5, 2), 5 * 64 + 30);
  EXPECT_EQ(plan.offset(5, 3), 5 * 64 + 60);
}

TEST(BatchPlan, EpochCoversStepsPerEpochTimesBDistinctSamples) {
  BatchPlan plan(kN, {16, 48}, 7, 3);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::set<int64_t> seen;
    size_t total = 0;
    for (int64_t k = epoch * plan.steps_per_epoch(); k < (epoch + 1) * plan.steps_per_epoch(); ++k) {
      ASSERT_EQ(plan.epoch_of(k), epoch);
      for (int r = 0; r < 2; ++r) {
        auto s = slice(plan, k, r);
        total += s.size();
        for (auto x : s) {
          ASSERT_GE(x, 0);
          ASSERT_LT(x, kN);
          seen.insert(x);
        }
      }
    }
    EXPECT_EQ(total, static_cast<size_t>(plan.steps_per_epoch() * plan.global_batch()));
    EXPECT_EQ(seen.size(), static_cast<size_t>(15 * 64)) << "samples repeated within epoch " << epoch;
  }
}

TEST(BatchPlan, DropsTheLastPartialBatch) {
  BatchPlan plan(kN, {16, 48}, 7, 3);
  const int64_t spe = plan.steps_per_epoch();
  // The last step of an epoch ends at spe * B = 960 <= 1000; the 40 leftover
  // samples are not used and the next step starts the next epoch at 0.
  EXPECT_EQ(plan.offset(spe - 1, 1) + plan.length(1), spe * 64);
  EXPECT_GT((spe + 1) * 64, kN) << "one more step would straddle two epochs";
  EXPECT_EQ(plan.offset(spe, 0), 0);
  EXPECT_EQ(plan.epoch_of(spe), 1);
  // A batch that divides N exactly uses every sample.
  BatchPlan exact(kN, {100, 150}, 7, 3);
  EXPECT_EQ(exact.steps_per_epoch(), 4);
}

TEST(BatchPlan, EpochOf) {
  BatchPlan plan(kN, {64}, 0, 0);  // 15 steps per epoch
  EXPECT_EQ(plan.epoch_of(0), 0);
  EXPECT_EQ(plan.epoch_of(14), 0);
  EXPECT_EQ(plan.epoch_of(15), 1);
  EXPECT_EQ(plan.epoch_of(29), 1);
  EXPECT_EQ(plan.epoch_of(30), 2);
  EXPECT_EQ(plan.epoch_of(3 * 15 + 2), 3);
}

TEST(BatchPlan, EpochPermutationIsAPermutation) {
  BatchPlan plan(kN, {64}, 5, 6);
  auto p = plan.epoch_permutation(0);
  ASSERT_EQ(p.size(), static_cast<size_t>(kN));
  std::vector<int64_t> sorted = p, iota(kN);
  std::sort(sorted.begin(), sorted.end());
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(sorted, iota);
  EXPECT_NE(p, iota) << "permutation should be shuffled";
}

TEST(BatchPlan, PermutationDiffersPerEpochAndPerSeed) {
  BatchPlan a(kN, {16, 48}, 7, 3);
  BatchPlan other_run(kN, {16, 48}, 7, 4);
  BatchPlan other_study(kN, {16, 48}, 8, 3);
  BatchPlan same(kN, {16, 48}, 7, 3);
  EXPECT_NE(a.epoch_permutation(0), a.epoch_permutation(1));
  EXPECT_NE(a.epoch_permutation(1), a.epoch_permutation(2));
  EXPECT_NE(a.epoch_permutation(0), other_run.epoch_permutation(0));
  EXPECT_NE(a.epoch_permutation(0), other_study.epoch_permutation(0));
  EXPECT_EQ(a.epoch_permutation(0), same.epoch_permutation(0));
  EXPECT_EQ(a.epoch_permutation(4), same.epoch_permutation(4));
}

TEST(BatchPlan, SplitDoesNotChangeTheSamplesOfAStep) {
  // [16, 48] on 2 ranks and [64] on 1 rank train on the same samples in the
  // same order: the rank slices of the split plan concatenate to the single slice.
  BatchPlan split(kN, {16, 48}, 7, 3);
  BatchPlan single(kN, {64}, 7, 3);
  BatchPlan three(kN, {5, 50, 9}, 7, 3);
  ASSERT_EQ(split.steps_per_epoch(), single.steps_per_epoch());
  for (int64_t k = 0; k < 3 * single.steps_per_epoch() + 1; ++k) {
    auto whole = slice(single, k, 0);
    auto cat = slice(split, k, 0);
    auto r1 = slice(split, k, 1);
    cat.insert(cat.end(), r1.begin(), r1.end());
    ASSERT_EQ(cat, whole) << "step " << k;
    std::vector<int64_t> cat3;
    for (int r = 0; r < 3; ++r) {
      auto s = slice(three, k, r);
      cat3.insert(cat3.end(), s.begin(), s.end());
    }
    ASSERT_EQ(cat3, whole) << "step " << k;
  }
}

TEST(BatchPlan, RejectsBadBatches) {
  EXPECT_THROW(BatchPlan(kN, {16, 0}, 1, 1), std::invalid_argument);
  EXPECT_THROW(BatchPlan(kN, {-4}, 1, 1), std::invalid_argument);
  EXPECT_THROW(BatchPlan(kN, {600, 401}, 1, 1), std::invalid_argument);
  EXPECT_NO_THROW(BatchPlan(kN, {600, 400}, 1, 1));
}

TEST(TrainEvalIndices, SortedUniqueRightSizeAndSeeded) {
  auto a = train_eval_indices(kN, 100, 7);
  ASSERT_EQ(a.size(), 100u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(std::adjacent_find(a.begin(), a.end()), a.end()) << "duplicates";
  EXPECT_GE(a.front(), 0);
  EXPECT_LT(a.back(), kN);
  // Not simply the first 100 samples.
  EXPECT_GT(a.back(), 100);
  EXPECT_EQ(train_eval_indices(kN, 100, 7), a);
  EXPECT_NE(train_eval_indices(kN, 100, 8), a);
}

TEST(TrainEvalIndices, SubsetLargerThanTrainSetTakesAll) {
  auto all = train_eval_indices(50, 1000, 3);
  std::vector<int64_t> iota(50);
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(all, iota);
  EXPECT_TRUE(train_eval_indices(50, 0, 3).empty());
}

}  // namespace
}  // namespace bs
