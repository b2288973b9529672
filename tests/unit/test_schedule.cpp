// Learning-rate schedule: linear warmup to the batch-scaled peak, then
// constant or cosine to zero.
#include <cmath>

#include <gtest/gtest.h>

#include "train/schedule.h"

namespace bs {
namespace {

RunBudget budget(int64_t total, int64_t warmup, double peak) {
  RunBudget b;
  b.total_steps = total;
  b.warmup_steps = warmup;
  b.peak_lr = peak;
  return b;
}

TEST(Schedule, ConstantWithoutWarmupIsThePeak) {
  OptimizerSpec o;
  for (int64_t s : {0, 1, 50, 99}) EXPECT_DOUBLE_EQ(lr_at(s, budget(100, 0, 0.2), o), 0.2);
}

TEST(Schedule, WarmupRisesLinearlyToThePeak) {
  OptimizerSpec o;
  RunBudget b = budget(100, 10, 0.5);
  EXPECT_DOUBLE_EQ(lr_at(0, b, o), 0.05);  // first step already moves: (0+1)/10
  EXPECT_DOUBLE_EQ(lr_at(4, b, o), 0.25);
  EXPECT_DOUBLE_EQ(lr_at(9, b, o), 0.5);
  EXPECT_DOUBLE_EQ(lr_at(10, b, o), 0.5);
  for (int64_t s = 1; s < 10; ++s) EXPECT_GT(lr_at(s, b, o), lr_at(s - 1, b, o));
}

TEST(Schedule, CosineDecaysFromPeakTowardZeroAfterWarmup) {
  OptimizerSpec o;
  o.schedule = "cosine";
  RunBudget b = budget(110, 10, 1.0);
  EXPECT_DOUBLE_EQ(lr_at(10, b, o), 1.0);
  EXPECT_NEAR(lr_at(60, b, o), 0.5, 1e-12);  // halfway through the decay
  EXPECT_LT(lr_at(109, b, o), 0.001);
  for (int64_t s = 11; s < 110; ++s) EXPECT_LT(lr_at(s, b, o), lr_at(s - 1, b, o));
}

}  // namespace
}  // namespace bs
