// DESIGN.md, step 1: a run's trajectory does not depend on how its global batch
// is split over ranks. [16, 48] over 2 ranks must match [64] on one rank, up to
// float32 summation order.
#include <cmath>

#include "data/dataset.h"
#include "mpi_helpers.h"

namespace bs::test {
namespace {

// Measured on the CPU build (LibTorch 1.13, Open MPI 4.1): 4.5e-7 relative on
// the loss and 4.2e-7 absolute on parameters after 40 momentum-SGD steps; the
// tolerances leave a factor of 20 for other BLAS builds and reduction orders.
constexpr double kLossRelTol = 1e-5;
constexpr double kParamAbsTol = 1e-5;

struct Trace {
  std::vector<double> loss, sqnorm, val_acc, params;
};

Trace collect(const KeepSink& sink, const RunResult& res) {
  Trace t;
  for (const auto& s : sink.steps) {
    t.loss.push_back(s.loss);
    t.sqnorm.push_back(s.sqnorm_global);
  }
  for (const auto& e : sink.evals) t.val_acc.push_back(e.val_acc);
  t.params.assign(res.final_params.begin(), res.final_params.end());
  return t;
}

void expect_split_invisible(const Study& st) {
  DataSplits data = load_data(st.file, st.data, st.seed);
  const int me = world_rank();
  TrainerOptions opt;
  opt.keep_final_params = true;

  // Ranks 0 and 1 train the split run together; the others sit it out.
  Trace split_trace;
  std::vector<double> split_rank_loss0;
  {
    auto comm = split(me < 2 ? 0 : -1);
    if (comm) {
      Trainer trainer(st, data, *comm, opt);
      KeepSink sink;
      RunResult res = trainer.run(run_spec("split", {16, 48}, 5), comm->rank() == 0 ? &sink : nullptr);
      EXPECT_EQ(res.status, RunStatus::Completed);
      if (comm->rank() == 0) {
        split_trace = collect(sink, res);
        ASSERT_EQ(sink.steps.size(), 40u);
        for (const auto& s : sink.steps) {
          ASSERT_EQ(s.loss_rank.size(), 2u);
          // The reported loss is the sample-weighted mean of the rank losses.
          EXPECT_NEAR(s.loss, 0.25 * s.loss_rank[0] + 0.75 * s.loss_rank[1], 1e-6);
        }
      }
      if (comm->rank() == 1) {
        // Both ranks end with identical parameters (one optimizer step on G).
        split_rank_loss0 = std::vector<double>(res.final_params.begin(), res.final_params.end());
      }
    }
  }
  auto rank1_params = bcast(split_rank_loss0, 1);

  // Rank 0 alone trains the same run at [64].
  if (me == 0) {
    MPI_Comm self = MPI_COMM_NULL;
    MPI_Comm_dup(MPI_COMM_SELF, &self);
    MpiCommunicator comm(self);
    Trainer trainer(st, data, comm, opt);
    KeepSink sink;
    RunResult res = trainer.run(run_spec("single", {64}, 5), &sink);
    Trace single = collect(sink, res);

    ASSERT_EQ(single.loss.size(), split_trace.loss.size());
    double max_rel = 0, max_sq_rel = 0, max_param = 0, max_param_ranks = 0;
    for (size_t k = 0; k < single.loss.size(); ++k) {
      max_rel = std::max(max_rel, std::abs(single.loss[k] - split_trace.loss[k]) / std::abs(single.loss[k]));
      max_sq_rel = std::max(max_sq_rel, std::abs(single.sqnorm[k] - split_trace.sqnorm[k]) / single.sqnorm[k]);
    }
    ASSERT_EQ(single.params.size(), split_trace.params.size());
    ASSERT_EQ(rank1_params.size(), split_trace.params.size());
    for (size_t k = 0; k < single.params.size(); ++k) {
      max_param = std::max(max_param, std::abs(single.params[k] - split_trace.params[k]));
      max_param_ranks = std::max(max_param_ranks, std::abs(rank1_params[k] - split_trace.params[k]));
    }
    std::printf(
        "[16,48] vs [64] over 40 steps: max loss rel diff %.3g, max |G|^2 rel diff %.3g, "
        "max param abs diff %.3g\n",
        max_rel, max_sq_rel, max_param);
    EXPECT_LT(max_rel, kLossRelTol);
    EXPECT_LT(max_sq_rel, 100 * kLossRelTol);
    EXPECT_LT(max_param, kParamAbsTol);
    EXPECT_EQ(max_param_ranks, 0.0) << "the two ranks of a group must hold bit-identical parameters";
    ASSERT_EQ(single.val_acc.size(), split_trace.val_acc.size());
    for (size_t k = 0; k < single.val_acc.size(); ++k) EXPECT_NEAR(single.val_acc[k], split_trace.val_acc[k], 2e-3);
    // Training happened: the loss went down.
    EXPECT_LT(single.loss.back(), single.loss.front());
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(Equivalence, SplitSixteenFortyEightMatchesSixtyFourOnOneRank) { expect_split_invisible(small_study()); }

// The same for a TorchScript module (784-32-10, no BatchNorm): its
// parameters are views of the flat buffer, so it has every guarantee.
TEST(Equivalence, TorchScriptSplitMatchesOneRank) { expect_split_invisible(torchscript_study("mlp_small.pt")); }

}  // namespace
}  // namespace bs::test

namespace bs::test {
namespace {

// Gradient accumulation over micro-batches computes the same mean gradient, so
// splitting each rank's batch for the noise estimate must not change the run.
TEST(Equivalence, MicroBatchesDoNotChangeTheTrajectory) {
  if (world_rank() == 0) {
    Study one = small_study();
    Study four = small_study("gns: {microbatches: 4}\n");
    DataSplits data = load_data(one.file, one.data, one.seed);
    MPI_Comm self = MPI_COMM_NULL;
    MPI_Comm_dup(MPI_COMM_SELF, &self);
    MpiCommunicator comm(self);
    KeepSink a, b;
    Trainer(one, data, comm).run(run_spec("m1", {64}, 5), &a);
    Trainer(four, data, comm).run(run_spec("m4", {64}, 5), &b);
    ASSERT_EQ(a.steps.size(), b.steps.size());
    double max_rel = 0;
    for (size_t k = 0; k < a.steps.size(); ++k) {
      max_rel = std::max(max_rel, std::abs(a.steps[k].loss - b.steps[k].loss) / a.steps[k].loss);
      EXPECT_TRUE(std::isnan(a.steps[k].b_simple)) << "one rank, no micro-batches: no estimate";
      EXPECT_TRUE(std::isfinite(b.steps[k].b_simple)) << "step " << k + 1;
      ASSERT_EQ(b.steps[k].sqnorm_micro.size(), 4u);
      // Each micro-batch gradient is noisier than their mean.
      double mean_micro = 0;
      for (float s : b.steps[k].sqnorm_micro) mean_micro += s / 4.0;
      EXPECT_GT(mean_micro, b.steps[k].sqnorm_local[0]);
    }
    std::printf("micro-batches 4 vs 1 over 40 steps: max loss rel diff %.3g\n", max_rel);
    EXPECT_LT(max_rel, kLossRelTol);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace
}  // namespace bs::test
