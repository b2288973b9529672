// The sample-weighted reduction: each rank pre-scales its mean gradient by
// B_i / B and the group sums, which must equal the mean over all B samples.
#include <cmath>

#include "mpi_helpers.h"

namespace bs::test {
namespace {

// Rank i's "gradient of its mean loss over B_i samples": the mean of B_i
// per-sample vectors, so the exact global mean is known.
std::vector<double> per_sample(int64_t sample, size_t d) {
  std::vector<double> v(d);
  for (size_t k = 0; k < d; ++k) v[k] = std::sin(0.37 * static_cast<double>(sample) + 0.11 * static_cast<double>(k));
  return v;
}

TEST(WeightedAllreduce, EqualsSampleWeightedMeanForUnequalBatches) {
  auto comm = split(0);
  const int n = comm->size(), me = comm->rank();
  const size_t d = 1000;
  std::vector<int64_t> batch;
  for (int i = 0; i < n; ++i) batch.push_back(3 + 13 * i);  // 3, 16, 29, ...: all different
  int64_t B = 0, first = 0;
  for (int i = 0; i < n; ++i) {
    if (i < me) first += batch[static_cast<size_t>(i)];
    B += batch[static_cast<size_t>(i)];
  }
  std::vector<double> mine(d, 0.0), truth(d, 0.0);
  for (int64_t s = 0; s < B; ++s) {
    auto v = per_sample(s, d);
    for (size_t k = 0; k < d; ++k) {
      truth[k] += v[k] / static_cast<double>(B);
      if (s >= first && s < first + batch[static_cast<size_t>(me)]) mine[k] += v[k] / batch[static_cast<size_t>(me)];
    }
  }
  const double w = static_cast<double>(batch[static_cast<size_t>(me)]) / static_cast<double>(B);
  std::vector<float> buf(d);
  std::vector<double> dbuf(d);
  for (size_t k = 0; k < d; ++k) {
    buf[k] = static_cast<float>(w * mine[k]);
    dbuf[k] = w * mine[k];
  }
  comm->allreduce_sum(buf.data(), d);
  comm->allreduce_sum(dbuf.data(), d);
  double max_err = 0, max_err_d = 0;
  for (size_t k = 0; k < d; ++k) {
    max_err = std::max(max_err, std::abs(buf[k] - truth[k]));
    max_err_d = std::max(max_err_d, std::abs(dbuf[k] - truth[k]));
  }
  EXPECT_LT(max_err, 1e-6) << "float32 weighted sum over " << n << " ranks";
  EXPECT_LT(max_err_d, 1e-12) << "float64 weighted sum over " << n << " ranks";
  // A plain average over ranks would be wrong here: make sure it differs.
  if (n > 1) {
    double plain = 0;
    comm->allreduce_sum(&mine[0], 1);
    plain = mine[0] / n;
    EXPECT_GT(std::abs(plain - truth[0]), 1e-4) << "the batches are unequal, so the unweighted mean must differ";
  }
}

TEST(WeightedAllreduce, SubgroupsReduceIndependently) {
  // Pairs of world ranks form groups; each group's sum involves only its ranks.
  const int me = world_rank();
  auto comm = split(me / 2);
  float v[2] = {static_cast<float>(me + 1), 1.0f};
  comm->allreduce_sum(v, 2);
  const int lo = (me / 2) * 2, hi = std::min(lo + 2, world_size());
  float expect = 0;
  for (int r = lo; r < hi; ++r) expect += static_cast<float>(r + 1);
  EXPECT_EQ(v[0], expect);
  EXPECT_EQ(v[1], static_cast<float>(hi - lo));
}

}  // namespace
}  // namespace bs::test
