// Replica groups train side by side without touching each other: a run trained
// in one group while another group trains something else gives the same trace
// as the same run trained alone.
#include <cmath>

#include "data/dataset.h"
#include "mpi_helpers.h"

namespace bs::test {
namespace {

std::vector<int64_t> equal_split(int64_t B, int n) {
  std::vector<int64_t> v(static_cast<size_t>(n), B / n);
  return v;
}

TEST(Groups, ParallelGroupsDoNotInterfere) {
  Study st = small_study();
  DataSplits data = load_data(st.file, st.data, st.seed);
  const int W = world_size(), me = world_rank();
  const int half = W / 2;  // group A: ranks [0, half), group B: [half, 2*half)
  const int color = me < half ? 0 : (me < 2 * half ? 1 : -1);

  std::vector<double> a_parallel, b_parallel;
  {
    auto comm = split(color);
    if (comm) {
      Trainer trainer(st, data, *comm);
      KeepSink sink;
      // Different seeds and lrs: if the groups mixed gradients, A would change.
      RunSpec spec =
          color == 0 ? run_spec("A", equal_split(64, half), 11, 0.05) : run_spec("B", equal_split(64, half), 12, 0.2);
      trainer.run(spec, comm->rank() == 0 ? &sink : nullptr);
      if (comm->rank() == 0)
        for (const auto& s : sink.steps) (color == 0 ? a_parallel : b_parallel).push_back(s.loss);
    }
  }
  b_parallel = bcast(b_parallel, half);

  if (me == 0) {
    MPI_Comm self = MPI_COMM_NULL;
    MPI_Comm_dup(MPI_COMM_SELF, &self);
    MpiCommunicator comm(self);
    Trainer trainer(st, data, comm);
    KeepSink sink;
    trainer.run(run_spec("A-alone", {64}, 11, 0.05), &sink);
    ASSERT_EQ(sink.steps.size(), a_parallel.size());
    ASSERT_EQ(b_parallel.size(), a_parallel.size());
    double max_rel = 0, max_ab = 0;
    for (size_t k = 0; k < a_parallel.size(); ++k) {
      max_rel = std::max(max_rel, std::abs(sink.steps[k].loss - a_parallel[k]) / a_parallel[k]);
      max_ab = std::max(max_ab, std::abs(b_parallel[k] - a_parallel[k]));
    }
    EXPECT_LT(max_rel, 1e-5) << "run A in a group beside B differs from A alone";
    EXPECT_GT(max_ab, 1e-3) << "runs A and B should have different traces (different seeds and lrs)";
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(Groups, SplitGivesEachGroupItsOwnCommunicator) {
  const int me = world_rank(), W = world_size();
  auto comm = split(me % 2);
  EXPECT_EQ(comm->size(), (W + 1 - me % 2) / 2);
  EXPECT_EQ(comm->rank(), me / 2);
}

}  // namespace
}  // namespace bs::test

namespace bs::test {
namespace {

TEST(Groups, DivergenceIsAgreedByTheWholeGroupAtOneStep) {
  Study st = small_study();
  DataSplits data = load_data(st.file, st.data, st.seed);
  auto comm = split(0);
  const int n = comm->size();
  Trainer trainer(st, data, *comm);
  KeepSink sink;
  std::vector<int64_t> batch(static_cast<size_t>(n), 16);
  RunResult res = trainer.run(run_spec("boom", batch, 4, /*lr=*/1e6), comm->rank() == 0 ? &sink : nullptr);
  EXPECT_EQ(res.status, RunStatus::Diverged);
  EXPECT_GE(res.steps, 1);
  EXPECT_LT(res.steps, 40) << "the run must stop at divergence, not train on";
  int64_t lo = res.steps, hi = res.steps;
  MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_INT64_T, MPI_MIN, comm->comm());
  MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_INT64_T, MPI_MAX, comm->comm());
  EXPECT_EQ(lo, hi) << "every rank must mark the same divergence step";
  if (comm->rank() == 0) {
    ASSERT_GE(sink.steps.size(), static_cast<size_t>(res.steps));
    const auto& first_bad = sink.steps[static_cast<size_t>(res.steps - 1)];
    EXPECT_FALSE(std::isfinite(first_bad.loss) && std::isfinite(first_bad.sqnorm_global));
    for (int64_t k = 0; k + 1 < res.steps; ++k)
      EXPECT_TRUE(std::isfinite(sink.steps[static_cast<size_t>(k)].loss)) << "step " << k + 1;
  }
  // The group can train its next run after a divergence.
  RunResult next = trainer.run(run_spec("after", batch, 4, 0.05), nullptr);
  EXPECT_EQ(next.status, RunStatus::Completed);
}

}  // namespace
}  // namespace bs::test

namespace bs::test {
namespace {

struct TargetSink : KeepSink {
  int64_t target_step = -1;
  void on_target(int64_t step, int64_t) override { target_step = step; }
};

TEST(Groups, TargetStopsTheWholeGroupAtTheSameEvaluation) {
  Study st = small_study("target: {metric: val_error, value: 0.5}\n");
  st.eval.every_steps = 5;
  st.budget.steps = 200;
  DataSplits data = load_data(st.file, st.data, st.seed);
  auto comm = split(0);
  std::vector<int64_t> batch(static_cast<size_t>(comm->size()), 16);
  Trainer trainer(st, data, *comm);
  TargetSink sink;
  RunResult res = trainer.run(run_spec("t", batch, 6, 0.05), comm->rank() == 0 ? &sink : nullptr);
  EXPECT_EQ(res.status, RunStatus::Completed);
  EXPECT_GT(res.target_step, 0);
  EXPECT_EQ(res.target_step % 5, 0) << "targets are checked at evaluations";
  EXPECT_EQ(res.steps, res.target_step) << "target.stop ends the run at the step that reached it";
  EXPECT_LT(res.steps, 200);
  EXPECT_LE(1.0 - res.final_eval.val_acc, 0.5);
  int64_t lo = res.steps, hi = res.steps;
  MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_INT64_T, MPI_MIN, comm->comm());
  MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_INT64_T, MPI_MAX, comm->comm());
  EXPECT_EQ(lo, hi);
  if (comm->rank() == 0) {
    EXPECT_EQ(sink.target_step, res.target_step);
    ASSERT_GE(sink.evals.size(), 2u);
    EXPECT_GT(1.0 - sink.evals[sink.evals.size() - 2].val_acc, 0.5) << "the eval before did not reach it";
  }
  // Without stop, the run trains its whole budget but keeps the first step.
  st.target.stop = false;
  st.budget.steps = 60;
  RunResult full = trainer.run(run_spec("t", batch, 6, 0.05), nullptr);
  EXPECT_EQ(full.steps, 60);
  EXPECT_EQ(full.target_step, res.target_step);
}

}  // namespace
}  // namespace bs::test
