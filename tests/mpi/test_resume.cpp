// A run stopped by a signal and continued from its checkpoint state is the same
// run, bit for bit, wherever the stop lands (on an evaluation step or not), on
// any group size.
#include <cmath>
#include <csignal>

#include "data/dataset.h"
#include "mpi_helpers.h"
#include "util/signals.h"

namespace bs::test {
namespace {

// Raises the stop signal once the trainer has delivered step `at`, and keeps
// what it was handed at the checkpoint.
struct StopSink : KeepSink {
  int64_t at;
  bool have_state = false;
  TrainState state;
  explicit StopSink(int64_t stop_at) : at(stop_at) {}
  void on_steps(const std::vector<StepRecord>& rows) override {
    KeepSink::on_steps(rows);
    if (rows.back().step >= at) set_stop_signal_for_testing(SIGUSR1);
  }
  void on_checkpoint(const TrainState& s) override {
    state = s;
    have_state = true;
  }
};

class Resume : public ::testing::TestWithParam<int64_t> {};

// Equal, or both NaN (an evaluation without sharpness).
bool same_bits(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

// eval.sharpness on: a pure function of the parameters and the seeded start
// vector, at the evaluations counted from the run's start.
Study with_sharpness(Study st) {
  st.eval.sharpness.every = 1;
  st.eval.sharpness.at_start = true;
  st.eval.sharpness.iterations = 8;
  st.eval.sharpness.samples = 256;
  return st;
}

// Stops a run once step `stop_at` is delivered, resumes it from its
// checkpoint state, and compares with the run left alone.
void expect_resume_exact(Study st, int64_t stop_at) {
  st.checkpoint.every_minutes = 0;
  DataSplits data = load_data(st.file, st.data, st.seed);
  auto comm = split(0);
  const int n = comm->size();
  std::vector<int64_t> batch(static_cast<size_t>(n), 16);
  batch[0] = 8;  // unequal on purpose
  TrainerOptions opt;
  opt.keep_final_params = true;
  Trainer trainer(st, data, *comm, opt);

  KeepSink whole;
  RunResult ref = trainer.run(run_spec("r", batch, 9), &whole);

  // Every rank raises the flag (as mpirun forwards a signal to all); the ranks
  // still agree through the reduction on one step to stop at.
  StopSink first(stop_at);
  RunResult stopped = trainer.run(run_spec("r", batch, 9), &first);
  set_stop_signal_for_testing(0);
  ASSERT_EQ(stopped.status, RunStatus::Preempted);
  const int64_t expect_stop[] = {16, 20, 36};
  EXPECT_EQ(stopped.steps, expect_stop[stop_at / 8 - 1]);
  ASSERT_TRUE(first.have_state);
  EXPECT_EQ(first.state.step, stopped.steps);
  EXPECT_EQ(static_cast<size_t>(first.state.step), first.steps.size()) << "the checkpoint matches the records";
  EXPECT_EQ(static_cast<size_t>(first.state.eval_rows), first.evals.size());

  KeepSink rest;
  RunResult resumed = trainer.run(run_spec("r", batch, 9), &rest, &first.state);
  EXPECT_EQ(resumed.status, RunStatus::Completed);
  std::vector<StepRecord> joined = first.steps;
  joined.insert(joined.end(), rest.steps.begin(), rest.steps.end());
  std::vector<EvalRecord> evals = first.evals;
  evals.insert(evals.end(), rest.evals.begin(), rest.evals.end());
  ASSERT_EQ(joined.size(), whole.steps.size());
  for (size_t k = 0; k < joined.size(); ++k) {
    EXPECT_EQ(joined[k].step, static_cast<int64_t>(k + 1));
    EXPECT_EQ(joined[k].loss, whole.steps[k].loss) << "step " << k + 1;
    EXPECT_EQ(joined[k].sqnorm_global, whole.steps[k].sqnorm_global) << "step " << k + 1;
    if (std::isfinite(whole.steps[k].b_simple)) EXPECT_EQ(joined[k].b_simple, whole.steps[k].b_simple);
  }
  ASSERT_EQ(evals.size(), whole.evals.size()) << "no evaluation lost or repeated";
  for (size_t k = 0; k < evals.size(); ++k) {
    EXPECT_EQ(evals[k].step, whole.evals[k].step);
    EXPECT_EQ(evals[k].val_acc, whole.evals[k].val_acc);
    EXPECT_EQ(evals[k].val_loss, whole.evals[k].val_loss);
    EXPECT_TRUE(same_bits(evals[k].sharpness, whole.evals[k].sharpness)) << "evaluation " << k;
    EXPECT_EQ(evals[k].sharpness_iterations, whole.evals[k].sharpness_iterations);
    EXPECT_TRUE(same_bits(evals[k].sharpness_residual, whole.evals[k].sharpness_residual));
  }
  EXPECT_EQ(resumed.final_params, ref.final_params);
}

TEST_P(Resume, ContinuesBitForBit) { expect_resume_exact(small_study(), GetParam()); }  // 40 steps, eval 20, log 8

// A TorchScript module with BatchNorm (running statistics in the checkpoint,
// averaged over the group at every drain) and one with dropout (seeded from
// run, rank, step): both continue bit for bit.
TEST(Resume, TorchScriptBatchNormContinuesBitForBit) { expect_resume_exact(torchscript_study("cnn_bn.pt"), 16); }
TEST(Resume, TorchScriptDropoutContinuesBitForBit) { expect_resume_exact(torchscript_study("dropout.pt"), 24); }
TEST(Resume, SharpnessContinuesBitForBit) { expect_resume_exact(with_sharpness(small_study()), 16); }
TEST(Resume, TorchScriptBatchNormSharpnessContinuesBitForBit) {
  expect_resume_exact(with_sharpness(torchscript_study("cnn_bn.pt")), 24);
}

// Records are drained every 8 steps and at evaluations (every 20), the count
// restarting at each drain: 8, 16, 20, 28, 36, 40. A flag raised when step `at`
// is delivered rides in the next steps' reductions and is seen at the next
// drain: raised at 8 -> stops at 16 (a log step); at 16 -> stops at 20 (an
// evaluation step: evaluate first, then checkpoint); at 24 (delivered at 28)
// -> stops at 36.
INSTANTIATE_TEST_SUITE_P(StopPoints, Resume, ::testing::Values(8, 16, 24));

}  // namespace
}  // namespace bs::test

namespace bs::test {
namespace {

struct CountSink : KeepSink {
  std::vector<int64_t> at;
  void on_checkpoint(const TrainState& s) override {
    at.push_back(s.step);
    EXPECT_EQ(static_cast<size_t>(s.step), steps.size()) << "records up to the checkpoint were delivered first";
  }
};

TEST(Checkpoints, EveryStepsFiresAtItsMultiplesOnly) {
  Study st = small_study("checkpoint: {every_steps: 10, every_minutes: 0}\n");
  DataSplits data = load_data(st.file, st.data, st.seed);
  auto comm = split(0);
  Trainer trainer(st, data, *comm);
  CountSink sink;
  std::vector<int64_t> batch(static_cast<size_t>(comm->size()), 16);
  RunResult res = trainer.run(run_spec("c", batch, 2), &sink);
  EXPECT_EQ(res.status, RunStatus::Completed);
  EXPECT_EQ(sink.at, (std::vector<int64_t>{10, 20, 30})) << "none after the last step: the run is complete";
}

}  // namespace
}  // namespace bs::test
