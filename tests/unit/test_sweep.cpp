// Sweep expansion and batch splitting.
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/sweep.h"

namespace bs {
namespace {

TEST(ExpandSweep, CountAndBatchMajorOrder) {
  SweepSpec sw;
  sw.global_batch = {32, 64, 256};
  sw.lr = {0.1, 0.2};
  sw.seed = {1, 2, 3};
  sw.ranks = 2;
  auto runs = expand_sweep(sw);
  ASSERT_EQ(runs.size(), 3u * 2u * 3u);
  size_t k = 0;
  for (int64_t b : sw.global_batch)
    for (double lr : sw.lr)
      for (uint64_t seed : sw.seed) {
        SCOPED_TRACE(k);
        EXPECT_EQ(runs[k].global_batch(), b);
        EXPECT_DOUBLE_EQ(runs[k].lr, lr);
        EXPECT_EQ(runs[k].seed, seed);
        EXPECT_EQ(runs[k].ranks(), 2);
        EXPECT_EQ(runs[k].name, sweep_run_name(b, lr, seed));
        ++k;
      }
  EXPECT_EQ(runs.front().name, "b32_lr0.1_s1");
  EXPECT_EQ(runs[1].name, "b32_lr0.1_s2");
  EXPECT_EQ(runs[3].name, "b32_lr0.2_s1");
  EXPECT_EQ(runs[6].name, "b64_lr0.1_s1");
  EXPECT_EQ(runs.back().name, "b256_lr0.2_s3");
  EXPECT_EQ(runs.front().batch_per_rank, (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(runs.back().batch_per_rank, (std::vector<int64_t>{128, 128}));
}

TEST(ExpandSweep, NamesAreUniqueAndReadable) {
  EXPECT_EQ(sweep_run_name(512, 0.05, 7), "b512_lr0.05_s7");
  EXPECT_EQ(sweep_run_name(8, 1e-3, 0), "b8_lr0.001_s0");
  SweepSpec sw;
  sw.global_batch = {16, 32};
  sw.lr = {0.01, 0.1};
  sw.seed = {0, 1};
  auto runs = expand_sweep(sw);
  for (size_t i = 0; i < runs.size(); ++i)
    for (size_t j = i + 1; j < runs.size(); ++j) EXPECT_NE(runs[i].name, runs[j].name);
}

TEST(ExpandSweep, WeightedSplitAppliesToEveryBatch) {
  SweepSpec sw;
  sw.global_batch = {32, 64, 512};
  sw.lr = {0.05};
  sw.seed = {1};
  sw.ranks = 2;
  sw.weights = {1, 3};
  auto runs = expand_sweep(sw);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].batch_per_rank, (std::vector<int64_t>{8, 24}));
  EXPECT_EQ(runs[1].batch_per_rank, (std::vector<int64_t>{16, 48}));
  EXPECT_EQ(runs[2].batch_per_rank, (std::vector<int64_t>{128, 384}));
}

TEST(ExpandSweep, PropagatesEmptyPart) {
  SweepSpec sw;
  sw.global_batch = {64, 3};
  sw.lr = {0.1};
  sw.seed = {1};
  sw.ranks = 4;
  EXPECT_THROW(expand_sweep(sw), std::invalid_argument);
}

TEST(SplitBatch, EqualWithRemainderGoesToFirstRanks) {
  EXPECT_EQ(split_batch(10, {1, 1, 1}), (std::vector<int64_t>{4, 3, 3}));
  EXPECT_EQ(split_batch(11, {1, 1, 1}), (std::vector<int64_t>{4, 4, 3}));
  EXPECT_EQ(split_batch(12, {1, 1, 1}), (std::vector<int64_t>{4, 4, 4}));
  EXPECT_EQ(split_batch(7, {1}), (std::vector<int64_t>{7}));
  auto p = split_batch(10, {1, 1, 1});
  EXPECT_EQ(std::accumulate(p.begin(), p.end(), int64_t{0}), 10);
}

TEST(SplitBatch, Weighted) {
  EXPECT_EQ(split_batch(64, {1, 3}), (std::vector<int64_t>{16, 48}));
  EXPECT_EQ(split_batch(64, {0.25, 0.75}), (std::vector<int64_t>{16, 48}));
  EXPECT_EQ(split_batch(100, {1, 2, 2}), (std::vector<int64_t>{20, 40, 40}));
  // 10 * (1, 3) / 4 = 2.5, 7.5: tie in remainder -> lower rank.
  EXPECT_EQ(split_batch(10, {1, 3}), (std::vector<int64_t>{3, 7}));
  // 10 * (1, 2) / 3 = 3.33, 6.67: the larger remainder wins.
  EXPECT_EQ(split_batch(10, {1, 2}), (std::vector<int64_t>{3, 7}));
}

TEST(SplitBatch, LargestRemainderAlwaysSumsToBAndStaysWithinOneOfExact) {
  const std::vector<std::vector<double>> weight_sets{{1},
                                                     {1, 1},
                                                     {1, 3},
                                                     {1, 1, 1},
                                                     {0.3, 0.7},
                                                     {1, 2, 3, 4},
                                                     {5, 1, 1, 1, 1},
                                                     {0.1, 0.2, 0.7},
                                                     {1, 1, 1, 1, 1, 1, 1},
                                                     {3.14159, 2.71828, 1.41421}};
  int checked = 0;
  for (const auto& w : weight_sets) {
    const double total = std::accumulate(w.begin(), w.end(), 0.0);
    for (int64_t B = 1; B <= 600; ++B) {
      SCOPED_TRACE("B=" + std::to_string(B) + " n=" + std::to_string(w.size()));
      double min_exact = 1e300;
      for (double x : w) min_exact = std::min(min_exact, B * x / total);
      std::vector<int64_t> parts;
      try {
        parts = split_batch(B, w);
      } catch (const std::invalid_argument&) {
        // Only allowed when some rank's exact share is below one sample.
        EXPECT_LT(min_exact, 1.0);
        continue;
      }
      ASSERT_EQ(parts.size(), w.size());
      EXPECT_EQ(std::accumulate(parts.begin(), parts.end(), int64_t{0}), B);
      for (size_t i = 0; i < w.size(); ++i) {
        const double exact = B * w[i] / total;
        EXPECT_GE(parts[i], 1);
        EXPECT_LT(std::fabs(static_cast<double>(parts[i]) - exact), 1.0) << "rank " << i;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 5000);
}

TEST(SplitBatch, ThrowsWhenAPartWouldBeEmpty) {
  EXPECT_THROW(split_batch(2, {1, 1, 1, 1}), std::invalid_argument);
  EXPECT_THROW(split_batch(5, {1, 100}), std::invalid_argument);  // 0.05 / 4.95 -> 0 / 5
  EXPECT_THROW(split_batch(10, {}), std::invalid_argument);
  EXPECT_THROW(split_batch(0, {1}), std::invalid_argument);
  try {
    split_batch(2, {1, 1, 1, 1});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("leaves rank 2 with no samples"), std::string::npos) << e.what();
  }
  // Exactly one sample per rank is fine.
  EXPECT_EQ(split_batch(4, {1, 1, 1, 1}), (std::vector<int64_t>{1, 1, 1, 1}));
}

}  // namespace
}  // namespace bs
