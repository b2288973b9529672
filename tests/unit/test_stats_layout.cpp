// The step's one reduction buffer (train/stats_layout.h): every slot has its
// own place, the parts tile the buffer in the documented order, and a ring
// row decodes into the record the run file stores.
#include <set>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "train/stats_layout.h"

namespace bs {
namespace {

// Every extras slot, named, in documented order.
std::vector<int64_t> all_extras_slots(const StatsLayout& s) {
  std::vector<int64_t> out;
  for (int i = 0; i < s.ranks(); ++i) out.push_back(s.loss(i));
  for (int i = 0; i < s.ranks(); ++i) out.push_back(s.sq_local(i));
  for (int64_t q = 0; q < s.micro_batches(); ++q) out.push_back(s.sq_micro(q));
  for (int64_t q = 0; q < s.micro_batches(); ++q)
    for (int64_t l = 0; l < s.layers(); ++l) out.push_back(s.layer_micro(q) + l);
  out.push_back(s.stop_flag());
  out.push_back(s.checkpoint_flag());
  return out;
}

TEST(StatsLayout, SlotsTileExtrasInOrder) {
  for (int n : {1, 2, 3})
    for (int64_t m : {1, 2, 4})
      for (int64_t L : {0, 1, 5}) {
        StatsLayout s(1000, n, m, L);
        const auto slots = all_extras_slots(s);
        ASSERT_EQ(static_cast<int64_t>(slots.size()), s.extras()) << n << " " << m << " " << L;
        for (size_t k = 0; k < slots.size(); ++k) EXPECT_EQ(slots[k], static_cast<int64_t>(k)) << "slot " << k;
        EXPECT_EQ(s.micro_batches(), n * m);
        EXPECT_EQ(s.buffer(), 1000 + s.extras());
        EXPECT_EQ(s.sq_global(), s.extras());
        EXPECT_EQ(s.layer_global(), s.extras() + 1);
        EXPECT_EQ(s.row_width(), s.extras() + 1 + L);
      }
}

TEST(StatsLayout, KnownShape) {
  // n = 2, m = 2, L = 3: [loss 2 | s_i 2 | s_k 4 | layer 12 | stop | ckpt] = 22
  StatsLayout s(10, 2, 2, 3);
  EXPECT_EQ(s.sq_local(0), 2);
  EXPECT_EQ(s.sq_micro(0), 4);
  EXPECT_EQ(s.layer_micro(0), 8);
  EXPECT_EQ(s.layer_micro(3), 17);
  EXPECT_EQ(s.stop_flag(), 20);
  EXPECT_EQ(s.checkpoint_flag(), 21);
  EXPECT_EQ(s.extras(), 22);
  EXPECT_EQ(s.buffer(), 32);
  EXPECT_EQ(s.row_width(), 26);
}

TEST(StatsLayout, RefusesImpossibleShapes) {
  EXPECT_THROW(StatsLayout(10, 0, 1, 0), std::invalid_argument);
  EXPECT_THROW(StatsLayout(10, 1, 0, 0), std::invalid_argument);
  EXPECT_THROW(StatsLayout(-1, 1, 1, 0), std::invalid_argument);
  EXPECT_THROW(StatsLayout(10, 1, 1, -1), std::invalid_argument);
}

TEST(StatsLayout, DecodesARow) {
  StatsLayout s(0, 2, 2, 1);
  std::vector<double> row(static_cast<size_t>(s.row_width()), 0.0);
  row[static_cast<size_t>(s.loss(0))] = 2.0;
  row[static_cast<size_t>(s.loss(1))] = 4.0;
  row[static_cast<size_t>(s.sq_local(1))] = 7.0;
  for (int64_t q = 0; q < 4; ++q) {
    row[static_cast<size_t>(s.sq_micro(q))] = 10.0 + static_cast<double>(q);
    row[static_cast<size_t>(s.layer_micro(q))] = 20.0 + static_cast<double>(q);
  }
  row[static_cast<size_t>(s.sq_global())] = 3.5;
  row[static_cast<size_t>(s.layer_global())] = 1.25;
  row[static_cast<size_t>(s.checkpoint_flag())] = 1.0;
  StepRecord r;
  s.decode(row.data(), {16, 48}, 64, r);
  EXPECT_DOUBLE_EQ(r.loss, 16.0 / 64 * 2.0 + 48.0 / 64 * 4.0);  // sample-weighted, not the plain mean
  EXPECT_EQ(r.loss_rank, (std::vector<float>{2.0f, 4.0f}));
  EXPECT_EQ(r.sqnorm_local, (std::vector<float>{0.0f, 7.0f}));
  EXPECT_EQ(r.sqnorm_micro, (std::vector<float>{10, 11, 12, 13}));
  EXPECT_EQ(r.layer_micro, (std::vector<float>{20, 21, 22, 23}));
  EXPECT_EQ(r.layer_global, (std::vector<float>{1.25f}));
  EXPECT_FLOAT_EQ(r.sqnorm_global, 3.5f);
  EXPECT_FALSE(s.stop_raised(row.data()));
  EXPECT_TRUE(s.checkpoint_raised(row.data()));
}

TEST(StatsLayout, NoLayersNoLayerColumns) {
  StatsLayout s(0, 1, 1, 0);
  std::vector<double> row(static_cast<size_t>(s.row_width()), 1.0);
  StepRecord r;
  s.decode(row.data(), {32}, 32, r);
  EXPECT_TRUE(r.layer_micro.empty());
  EXPECT_TRUE(r.layer_global.empty());
  EXPECT_EQ(r.sqnorm_micro.size(), 1u);
}

}  // namespace
}  // namespace bs
