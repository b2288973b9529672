// eval.sharpness over a group: each rank's shard of the subset, the products
// summed over the group, is the whole subset's. A [16, 48] run on 2 ranks and
// the same run at [64] on 1 rank measure the same sharpness at every
// evaluation, up to float rounding (their parameters differ by summation
// order only: test_equivalence), within 1e-4 relative.
#include <cmath>
#include <cstdio>

#include "data/dataset.h"
#include "mpi_helpers.h"

namespace bs::test {
namespace {

constexpr double kRelTol = 1e-4;

Study sharpness_study() {
  Study st = small_study();
  st.eval.sharpness.every = 1;
  st.eval.sharpness.at_start = true;
  st.eval.sharpness.iterations = 40;
  st.eval.sharpness.samples = 512;
  st.eval.sharpness.tolerance = 0;  // the same products on both sides until the estimate stops changing
  return st;
}

std::vector<double> sharpness_of(const KeepSink& sink) {
  std::vector<double> out;
  for (const auto& e : sink.evals) out.push_back(e.sharpness);
  return out;
}

TEST(Sharpness, OneRankEqualsATwoRankSplitGroup) {
  const Study st = sharpness_study();
  DataSplits data = load_data(st.file, st.data, st.seed);
  const int me = world_rank();
  std::vector<double> split_values;
  {
    auto comm = split(me < 2 ? 0 : -1);
    if (comm) {
      Trainer trainer(st, data, *comm);
      KeepSink sink;
      trainer.run(run_spec("split", {16, 48}, 5), comm->rank() == 0 ? &sink : nullptr);
      if (comm->rank() == 0) split_values = sharpness_of(sink);
    }
  }
  if (me != 0) return;
  MPI_Comm self = MPI_COMM_NULL;
  MPI_Comm_dup(MPI_COMM_SELF, &self);
  MpiCommunicator comm(self);
  Trainer trainer(st, data, comm);
  KeepSink sink;
  trainer.run(run_spec("single", {64}, 5), &sink);
  const std::vector<double> single = sharpness_of(sink);
  ASSERT_EQ(single.size(), 3u);  // steps 0 (the same parameters on both sides), 20, 40
  ASSERT_EQ(split_values.size(), single.size());
  double max_rel = 0;
  for (size_t k = 0; k < single.size(); ++k) {
    ASSERT_TRUE(std::isfinite(single[k]) && single[k] > 0) << single[k];
    const double rel = std::abs(single[k] - split_values[k]) / std::abs(single[k]);
    EXPECT_LT(rel, kRelTol) << "evaluation " << k << ": " << single[k] << " vs " << split_values[k];
    max_rel = std::max(max_rel, rel);
  }
  std::printf("sharpness 1 rank vs [16, 48] on 2 ranks: %.7g %.7g %.7g, max relative difference %.3g\n", single[0],
              single[1], single[2], max_rel);
}

// Without at_start (the default) the step-0 evaluation measures nothing,
// and the later ones are exactly what they are with it: each is a function of
// that evaluation's parameters and step alone.
TEST(Sharpness, StepZeroOnlyWithAtStart) {
  if (world_rank() != 0) return;
  Study with = sharpness_study();
  with.eval.sharpness.iterations = 10;
  Study without = with;
  without.eval.sharpness.at_start = false;
  MPI_Comm self = MPI_COMM_NULL;
  MPI_Comm_dup(MPI_COMM_SELF, &self);
  MpiCommunicator comm(self);
  std::vector<EvalRecord> evals[2];
  for (int k = 0; k < 2; ++k) {
    const Study& st = k == 0 ? with : without;
    DataSplits data = load_data(st.file, st.data, st.seed);
    Trainer trainer(st, data, comm);
    KeepSink sink;
    trainer.run(run_spec("r", {64}, 5), &sink);
    evals[k] = sink.evals;
  }
  ASSERT_EQ(evals[0].size(), 3u);
  ASSERT_EQ(evals[1].size(), 3u);
  EXPECT_TRUE(std::isfinite(evals[0][0].sharpness));
  EXPECT_TRUE(std::isnan(evals[1][0].sharpness));
  EXPECT_EQ(evals[1][0].sharpness_iterations, 0);
  for (size_t i = 1; i < 3; ++i) {
    EXPECT_TRUE(std::isfinite(evals[1][i].sharpness)) << "evaluation " << i;
    EXPECT_EQ(evals[0][i].sharpness, evals[1][i].sharpness) << "evaluation " << i;
  }
}

}  // namespace
}  // namespace bs::test
