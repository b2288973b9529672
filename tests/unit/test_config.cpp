// Study parsing, defaults, --set overrides, resolved YAML, run budgets, the
// error messages a researcher sees for a bad study file, and the README's list
// of study-file keys against the parser's.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <hdf5.h>
#include <yaml-cpp/yaml.h>

#include "config/study.h"
#include "config/yaml_tree.h"
#include "helpers.h"
#include "util/errors.h"

namespace bs {
namespace {

const char* kLabel = "study.yaml";

// A small valid study: synthetic data, a 2 x 2 x 2 sweep over 2 ranks.
const char* kSweepStudy = R"(
study: unit
seed: 3
data:
  name: synthetic
  synthetic_train: 1000
  synthetic_test: 200
optimizer:
  lr: 0.1
budget:
  epochs: 2
sweep:
  global_batch: [32, 64]
  lr: [0.1, 0.2]
  seed: [1, 2]
  ranks: 2
)";

// A valid study with explicit runs (heterogeneous batches).
const char* kRunsStudy = R"(
study: explicit
data: {name: synthetic, synthetic_train: 4096}
model: {name: mlp, hidden: [64]}
budget: {steps: 100}
runs:
  - {name: small, batch: [16, 48], lr: 0.1, seed: 4}
  - {name: big, batch: [128], seed: 5}
)";

bool same_runs(const std::vector<RunSpec>& a, const std::vector<RunSpec>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].name != b[i].name || a[i].batch_per_rank != b[i].batch_per_rank || a[i].lr != b[i].lr ||
        a[i].seed != b[i].seed)
      return false;
  return true;
}

// ---------------------------------------------------------------- valid input

TEST(ParseStudy, SweepStudyExpandsAndFillsDefaults) {
  Study st = parse_study(kSweepStudy, kLabel);
  EXPECT_EQ(st.file, kLabel);
  EXPECT_EQ(st.name, "unit");
  EXPECT_EQ(st.seed, 3u);
  // Defaults.
  EXPECT_EQ(st.output, "results/unit");
  EXPECT_EQ(st.device, "auto");
  EXPECT_EQ(st.comm, "auto");
  EXPECT_EQ(st.comm_timeout_s, 300);
  EXPECT_EQ(st.model.name, "mlp");
  EXPECT_EQ(st.model.hidden, (std::vector<int64_t>{512, 256}));
  EXPECT_EQ(st.optimizer.name, "sgd");
  EXPECT_DOUBLE_EQ(st.optimizer.lr, 0.1);
  EXPECT_EQ(st.optimizer.ref_batch, 128);
  EXPECT_EQ(st.optimizer.scaling, "none");
  EXPECT_EQ(st.optimizer.schedule, "constant");
  EXPECT_DOUBLE_EQ(st.optimizer.momentum, 0.9);
  EXPECT_FALSE(st.optimizer.nesterov);
  EXPECT_DOUBLE_EQ(st.optimizer.weight_decay, 0.0);
  EXPECT_DOUBLE_EQ(st.budget.epochs, 2.0);
  EXPECT_EQ(st.budget.steps, 0);
  EXPECT_EQ(st.eval.every_steps, 0);
  EXPECT_DOUBLE_EQ(st.eval.every_epochs, 0.0);
  EXPECT_EQ(st.eval.train_subset, 10000);
  EXPECT_EQ(st.eval.batch, 1000);
  EXPECT_EQ(st.log.every_steps, 20);
  EXPECT_DOUBLE_EQ(st.log.flush_seconds, 10.0);
  EXPECT_DOUBLE_EQ(st.gns.ema_samples, 10000.0);  // the EMA counts samples unless ema_beta is set
  EXPECT_EQ(st.data.name, "synthetic");
  EXPECT_EQ(st.data.effective_train_size(), 1000);
  EXPECT_EQ(st.data.effective_test_size(), 200);

  // Batch-major, then lr, then seed; equal split over 2 ranks.
  ASSERT_EQ(st.runs.size(), 8u);
  EXPECT_EQ(st.runs[0].name, "b32_lr0.1_s1");
  EXPECT_EQ(st.runs[1].name, "b32_lr0.1_s2");
  EXPECT_EQ(st.runs[2].name, "b32_lr0.2_s1");
  EXPECT_EQ(st.runs[4].name, "b64_lr0.1_s1");
  EXPECT_EQ(st.runs[7].name, "b64_lr0.2_s2");
  EXPECT_EQ(st.runs[0].batch_per_rank, (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(st.runs[7].batch_per_rank, (std::vector<int64_t>{32, 32}));
  EXPECT_DOUBLE_EQ(st.runs[2].lr, 0.2);
  EXPECT_EQ(st.runs[1].seed, 2u);
  EXPECT_FALSE(st.resolved_yaml.empty());
}

TEST(ParseStudy, ExplicitRunsKeepNamesBatchesAndDefaultLr) {
  Study st = parse_study(kRunsStudy, kLabel);
  ASSERT_EQ(st.runs.size(), 2u);
  EXPECT_EQ(st.runs[0].name, "small");
  EXPECT_EQ(st.runs[0].batch_per_rank, (std::vector<int64_t>{16, 48}));
  EXPECT_EQ(st.runs[0].global_batch(), 64);
  EXPECT_EQ(st.runs[0].ranks(), 2);
  EXPECT_DOUBLE_EQ(st.runs[0].lr, 0.1);
  EXPECT_EQ(st.runs[0].seed, 4u);
  EXPECT_EQ(st.runs[1].name, "big");
  EXPECT_DOUBLE_EQ(st.runs[1].lr, 0.05);  // optimizer.lr default
  EXPECT_EQ(st.runs[1].ranks(), 1);
  EXPECT_EQ(st.model.hidden, (std::vector<int64_t>{64}));
  EXPECT_EQ(st.budget.steps, 100);
}

TEST(ParseStudy, RunWithoutNameGetsSweepStyleName) {
  Study st = parse_study("study: s\nbudget: {steps: 5}\nruns: [{batch: [8, 24], lr: 0.2, seed: 3}]\n", kLabel);
  ASSERT_EQ(st.runs.size(), 1u);
  EXPECT_EQ(st.runs[0].name, "b32_lr0.2_s3");
}

TEST(ParseStudy, AdamTakesBetasAndDefaultsMomentumToZero) {
  Study st = parse_study(
      "study: s\nbudget: {steps: 5}\noptimizer: {name: adam, lr: 0.001, betas: [0.8, 0.95]}\n"
      "sweep: {global_batch: [64]}\n",
      kLabel);
  EXPECT_EQ(st.optimizer.name, "adam");
  EXPECT_DOUBLE_EQ(st.optimizer.beta1, 0.8);
  EXPECT_DOUBLE_EQ(st.optimizer.beta2, 0.95);
  EXPECT_DOUBLE_EQ(st.optimizer.momentum, 0.0);
}

TEST(ParseStudy, WeightedSplitInSweep) {
  Study st =
      parse_study("study: s\nbudget: {steps: 5}\nsweep: {global_batch: [64], ranks: 2, split: [1, 3]}\n", kLabel);
  ASSERT_EQ(st.runs.size(), 1u);
  EXPECT_EQ(st.runs[0].batch_per_rank, (std::vector<int64_t>{16, 48}));
}

// ---------------------------------------------------------------- overrides

TEST(Overrides, NestedScalar) {
  Study st = parse_study(kSweepStudy, kLabel, {"optimizer.lr=0.2", "optimizer.scaling=sqrt", "eval.every_steps=7"});
  EXPECT_DOUBLE_EQ(st.optimizer.lr, 0.2);
  EXPECT_EQ(st.optimizer.scaling, "sqrt");
  EXPECT_EQ(st.eval.every_steps, 7);
}

TEST(Overrides, CreatesMissingSections) {
  Study st = parse_study(kSweepStudy, kLabel, {"gns.ema_beta=0.5"});
  EXPECT_DOUBLE_EQ(st.gns.ema_beta, 0.5);
  EXPECT_DOUBLE_EQ(st.gns.ema_samples, 0.0);  // ema_beta set: the EMA counts steps
}

TEST(Overrides, ListValueReplacesSweep) {
  Study st = parse_study(kSweepStudy, kLabel, {"sweep.global_batch=[32,64]", "sweep.lr=[0.3]", "sweep.seed=[9]"});
  ASSERT_EQ(st.runs.size(), 2u);
  EXPECT_EQ(st.runs[0].name, "b32_lr0.3_s9");
  EXPECT_EQ(st.runs[1].name, "b64_lr0.3_s9");

  Study one = parse_study(kSweepStudy, kLabel, {"sweep.global_batch=[128]"});
  ASSERT_EQ(one.runs.size(), 4u);
  for (const auto& r : one.runs) EXPECT_EQ(r.global_batch(), 128);
}

TEST(Overrides, NullRemovesKey) {
  // hidden: [64] removed -> the default [512, 256] comes back.
  Study st = parse_study(kRunsStudy, kLabel, {"model.hidden=null"});
  EXPECT_EQ(st.model.hidden, (std::vector<int64_t>{512, 256}));
  // Removing budget.steps and adding budget.epochs switches the budget kind
  // (with both present the study would be rejected).
  Study ep = parse_study(kRunsStudy, kLabel, {"budget.steps=null", "budget.epochs=3"});
  EXPECT_EQ(ep.budget.steps, 0);
  EXPECT_DOUBLE_EQ(ep.budget.epochs, 3.0);
  // Removing a required key makes the study invalid: proves it was removed.
  EXPECT_THROW(parse_study(kRunsStudy, kLabel, {"budget=null"}), ConfigError);
}

TEST(Overrides, IndexIntoList) {
  Study st = parse_study(kRunsStudy, kLabel, {"runs.0.lr=0.2", "runs.1.batch=[32,32]"});
  ASSERT_EQ(st.runs.size(), 2u);
  EXPECT_DOUBLE_EQ(st.runs[0].lr, 0.2);
  EXPECT_EQ(st.runs[0].name, "small");
  EXPECT_EQ(st.runs[1].batch_per_rank, (std::vector<int64_t>{32, 32}));
}

TEST(Overrides, OutOfRangeIndexAndNonNumericIndexAreErrors) {
  try {
    parse_study(kRunsStudy, kLabel, {"runs.5.lr=0.2"});
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("runs.5.lr"), std::string::npos) << e.what();
  }
  try {
    parse_study(kRunsStudy, kLabel, {"runs.first.lr=0.2"});
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("use a number"), std::string::npos) << e.what();
  }
}

TEST(Overrides, ResolvedYamlRecordsOverride) {
  Study st = parse_study(kSweepStudy, kLabel, {"optimizer.lr=0.25"});
  EXPECT_NE(st.resolved_yaml.find("0.25"), std::string::npos) << st.resolved_yaml;
}

// ---------------------------------------------------------------- resolved YAML

void expect_equivalent(const Study& a, const Study& b) {
  EXPECT_TRUE(same_runs(a.runs, b.runs));
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.output, b.output);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.device, b.device);
  EXPECT_EQ(a.comm, b.comm);
  EXPECT_EQ(a.data.name, b.data.name);
  EXPECT_EQ(a.data.effective_train_size(), b.data.effective_train_size());
  EXPECT_EQ(a.data.effective_test_size(), b.data.effective_test_size());
  EXPECT_EQ(a.model.name, b.model.name);
  EXPECT_EQ(a.model.hidden, b.model.hidden);
  EXPECT_EQ(a.optimizer.name, b.optimizer.name);
  EXPECT_DOUBLE_EQ(a.optimizer.lr, b.optimizer.lr);
  EXPECT_EQ(a.optimizer.ref_batch, b.optimizer.ref_batch);
  EXPECT_EQ(a.optimizer.scaling, b.optimizer.scaling);
  EXPECT_EQ(a.optimizer.schedule, b.optimizer.schedule);
  EXPECT_DOUBLE_EQ(a.optimizer.warmup_epochs, b.optimizer.warmup_epochs);
  EXPECT_EQ(a.optimizer.warmup_steps, b.optimizer.warmup_steps);
  EXPECT_DOUBLE_EQ(a.optimizer.momentum, b.optimizer.momentum);
  EXPECT_DOUBLE_EQ(a.optimizer.beta1, b.optimizer.beta1);
  EXPECT_DOUBLE_EQ(a.optimizer.beta2, b.optimizer.beta2);
  EXPECT_DOUBLE_EQ(a.budget.epochs, b.budget.epochs);
  EXPECT_EQ(a.budget.steps, b.budget.steps);
  EXPECT_DOUBLE_EQ(a.eval.every_epochs, b.eval.every_epochs);
  EXPECT_EQ(a.eval.every_steps, b.eval.every_steps);
  EXPECT_EQ(a.eval.train_subset, b.eval.train_subset);
  EXPECT_EQ(a.log.every_steps, b.log.every_steps);
  EXPECT_DOUBLE_EQ(a.gns.ema_beta, b.gns.ema_beta);
  EXPECT_DOUBLE_EQ(a.gns.ema_samples, b.gns.ema_samples);
  EXPECT_EQ(a.optimizer.beta2_scaling, b.optimizer.beta2_scaling);
  for (size_t i = 0; i < a.runs.size() && i < b.runs.size(); ++i) {
    RunBudget ra = run_budget(a, a.runs[i]), rb = run_budget(b, b.runs[i]);
    EXPECT_EQ(ra.total_steps, rb.total_steps);
    EXPECT_EQ(ra.eval_every_steps, rb.eval_every_steps);
    EXPECT_EQ(ra.warmup_steps, rb.warmup_steps);
    EXPECT_DOUBLE_EQ(ra.peak_lr, rb.peak_lr);
    EXPECT_DOUBLE_EQ(ra.beta2, rb.beta2);
  }
}

TEST(ResolvedYaml, ReparsesIntoEquivalentStudy) {
  for (const char* text : {kSweepStudy, kRunsStudy}) {
    SCOPED_TRACE(text);
    Study a = parse_study(text, kLabel, {"optimizer.scaling=linear", "optimizer.warmup_epochs=0.5"});
    Study b = parse_study(a.resolved_yaml, "resolved.yaml");
    expect_equivalent(a, b);
    // A fixed point: resolving the resolved study changes nothing.
    EXPECT_EQ(b.resolved_yaml, a.resolved_yaml);
  }
}

TEST(ResolvedYaml, AdamStudyRoundTrips) {
  Study a = parse_study(
      "study: s\nbudget: {steps: 5}\noptimizer: {name: adam, lr: 0.001, betas: [0.8, 0.95], warmup_steps: 3}\n"
      "eval: {every_steps: 2}\nsweep: {global_batch: [64, 100], ranks: 2, split: [1, 3], seed: [1, 2]}\n",
      kLabel);
  Study b = parse_study(a.resolved_yaml, "resolved.yaml");
  expect_equivalent(a, b);
}

// The resolved YAML is stored in run files and compared across jobs, so its
// bytes are pinned: a change here changes every fingerprint.
TEST(ResolvedYaml, QuickstartBytesArePinned) {
  Study st = load_study(std::string(BATCHSCOPE_SOURCE_DIR) + "/configs/quickstart.yaml");
  EXPECT_EQ(st.resolved_yaml, R"(study: quickstart
output: results/quickstart
seed: 7
device: auto
comm: auto
comm_timeout_s: 300
data:
  name: fashion-mnist
  root: /usr/share/datasets/fashion-mnist
  train_size: 60000
  test_size: 10000
model:
  name: mlp
  hidden: [256, 128]
  loss: cross_entropy
optimizer:
  name: sgd
  lr: 0.050000000000000003
  ref_batch: 128
  scaling: sqrt
  schedule: constant
  warmup_epochs: 0.10000000000000001
  momentum: 0.90000000000000002
  nesterov: false
  weight_decay: 0
budget:
  epochs: 1
eval:
  every_epochs: 0.10000000000000001
  train_subset: 10000
  batch: 1000
log:
  every_steps: 20
  flush_seconds: 10
  progress_seconds: 5
gns:
  ema_samples: 10000
  microbatches: 1
  per_layer: false
checkpoint:
  every_steps: 0
  every_minutes: 10
gpu:
  graphs: auto
target:
  metric: val_error
  value: 0.20000000000000001
  stop: false
runs:
  - {name: b32_lr0.025_s1, batch: [8, 24], lr: 0.025000000000000001, seed: 1}
  - {name: b32_lr0.05_s1, batch: [8, 24], lr: 0.050000000000000003, seed: 1}
  - {name: b32_lr0.1_s1, batch: [8, 24], lr: 0.10000000000000001, seed: 1}
  - {name: b128_lr0.025_s1, batch: [32, 96], lr: 0.025000000000000001, seed: 1}
  - {name: b128_lr0.05_s1, batch: [32, 96], lr: 0.050000000000000003, seed: 1}
  - {name: b128_lr0.1_s1, batch: [32, 96], lr: 0.10000000000000001, seed: 1}
  - {name: b512_lr0.025_s1, batch: [128, 384], lr: 0.025000000000000001, seed: 1}
  - {name: b512_lr0.05_s1, batch: [128, 384], lr: 0.050000000000000003, seed: 1}
  - {name: b512_lr0.1_s1, batch: [128, 384], lr: 0.10000000000000001, seed: 1})");
}

// The branches quickstart does not take: synthetic data, cnn, adam, steps,
// warmup_steps, eval.every_steps, a target, explicit runs beside a sweep.
TEST(ResolvedYaml, OtherBranchesBytesArePinned) {
  Study st = parse_study(R"(
study: branches
device: cpu
comm: mpi
comm_timeout_s: 60.5
data: {name: synthetic, synthetic_train: 4096, synthetic_test: 512, synthetic_noise: 0.5, train_size: 2048}
model: {name: cnn}
optimizer: {name: adam, lr: 0.001, betas: [0.8, 0.95], eps: 1.0e-6, warmup_steps: 3, weight_decay: 0.01,
            schedule: cosine, scaling: linear}
budget: {steps: 50}
eval: {every_steps: 10, train_subset: 0, batch: 256}
gns: {microbatches: 2, per_layer: true}
checkpoint: {every_steps: 5, every_minutes: 0}
gpu: {graphs: off}
target: {metric: val_loss, value: 0.3, stop: false}
runs: [{name: hetero, batch: [16, 48], lr: 0.002, seed: 4}]
sweep: {global_batch: [64, 100], lr: [0.001], seed: [1, 2], ranks: 2, split: [1, 3]}
)",
                         kLabel);
  EXPECT_EQ(st.resolved_yaml, R"(study: branches
output: results/branches
seed: 0
device: cpu
comm: mpi
comm_timeout_s: 60.5
data:
  name: synthetic
  root: ""
  train_size: 2048
  test_size: 512
  synthetic_train: 4096
  synthetic_test: 512
  synthetic_noise: 0.5
model:
  name: cnn
  loss: cross_entropy
optimizer:
  name: adam
  lr: 0.001
  ref_batch: 128
  scaling: linear
  beta2_scaling: none
  schedule: cosine
  warmup_steps: 3
  betas: [0.80000000000000004, 0.94999999999999996]
  eps: 9.9999999999999995e-07
  weight_decay: 0.01
budget:
  steps: 50
eval:
  every_steps: 10
  train_subset: 0
  batch: 256
log:
  every_steps: 20
  flush_seconds: 10
  progress_seconds: 5
gns:
  ema_samples: 10000
  microbatches: 2
  per_layer: true
checkpoint:
  every_steps: 5
  every_minutes: 0
gpu:
  graphs: off
target:
  metric: val_loss
  value: 0.29999999999999999
  stop: false
runs:
  - {name: hetero, batch: [16, 48], lr: 0.002, seed: 4}
  - {name: b64_lr0.001_s1, batch: [16, 48], lr: 0.001, seed: 1}
  - {name: b64_lr0.001_s2, batch: [16, 48], lr: 0.001, seed: 2}
  - {name: b100_lr0.001_s1, batch: [25, 75], lr: 0.001, seed: 1}
  - {name: b100_lr0.001_s2, batch: [25, 75], lr: 0.001, seed: 2})");
}

TEST(RunYaml, NamesBudget) {
  Study st = parse_study(kRunsStudy, kLabel);
  std::string y = run_yaml(st, st.runs[0]);
  EXPECT_NE(y.find("name: small"), std::string::npos) << y;
  EXPECT_NE(y.find("global_batch: 64"), std::string::npos) << y;
  EXPECT_NE(y.find("steps_per_epoch: 64"), std::string::npos) << y;  // 4096 / 64
  EXPECT_NE(y.find("total_steps: 100"), std::string::npos) << y;
}

// ---------------------------------------------------------------- run budget

Study budget_study() {
  // 1000 synthetic samples; a run of global batch 96 has floor(1000/96) = 10 steps per epoch.
  return parse_study(
      "study: b\ndata: {name: synthetic, synthetic_train: 1000}\n"
      "optimizer: {lr: 0.1, ref_batch: 128}\nbudget: {epochs: 2.5}\n"
      "runs: [{name: r, batch: [32, 64], lr: 0.1}]\n",
      kLabel);
}

TEST(RunBudget, StepsPerEpochIsFloorOfNOverB) {
  Study st = budget_study();
  RunBudget rb = run_budget(st, st.runs[0]);
  EXPECT_EQ(rb.train_size, 1000);
  EXPECT_EQ(rb.steps_per_epoch, 10);
  RunSpec r = st.runs[0];
  r.batch_per_rank = {100};
  EXPECT_EQ(run_budget(st, r).steps_per_epoch, 10);
  r.batch_per_rank = {101};
  EXPECT_EQ(run_budget(st, r).steps_per_epoch, 9);
  r.batch_per_rank = {1000};
  EXPECT_EQ(run_budget(st, r).steps_per_epoch, 1);
  r.batch_per_rank = {1001};
  EXPECT_THROW(run_budget(st, r), ConfigError);
}

TEST(RunBudget, EpochsToSteps) {
  Study st = budget_study();
  EXPECT_EQ(run_budget(st, st.runs[0]).total_steps, 25);  // floor(2.5 * 10)
  st.budget.epochs = 0.37;
  EXPECT_EQ(run_budget(st, st.runs[0]).total_steps, 3);  // floor(3.7)
  st.budget.epochs = 0.01;
  EXPECT_EQ(run_budget(st, st.runs[0]).total_steps, 1);  // at least one step
  st.budget.epochs = 0;
  st.budget.steps = 77;
  EXPECT_EQ(run_budget(st, st.runs[0]).total_steps, 77);
}

TEST(RunBudget, EvalEverySteps) {
  Study st = budget_study();
  EXPECT_EQ(run_budget(st, st.runs[0]).eval_every_steps, 0);  // only start and end
  st.eval.every_epochs = 0.25;
  EXPECT_EQ(run_budget(st, st.runs[0]).eval_every_steps, 3);  // llround(2.5)
  st.eval.every_epochs = 0.01;
  EXPECT_EQ(run_budget(st, st.runs[0]).eval_every_steps, 1);  // at least every step
  st.eval.every_epochs = 0;
  st.eval.every_steps = 7;
  EXPECT_EQ(run_budget(st, st.runs[0]).eval_every_steps, 7);
}

TEST(RunBudget, WarmupSteps) {
  Study st = budget_study();
  EXPECT_EQ(run_budget(st, st.runs[0]).warmup_steps, 0);
  st.optimizer.warmup_epochs = 0.5;
  EXPECT_EQ(run_budget(st, st.runs[0]).warmup_steps, 5);
  st.optimizer.warmup_epochs = 0;
  st.optimizer.warmup_steps = 12;
  EXPECT_EQ(run_budget(st, st.runs[0]).warmup_steps, 12);
  // Through the parser as well.
  Study p = parse_study(kRunsStudy, kLabel, {"optimizer.warmup_epochs=0.25"});
  EXPECT_EQ(run_budget(p, p.runs[0]).warmup_steps, 16);  // 0.25 * 4096/64
}

TEST(RunBudget, PeakLrScaling) {
  Study st = budget_study();
  RunSpec r = st.runs[0];
  r.batch_per_rank = {128, 384};  // B = 512 = 4 x ref_batch
  st.data.synthetic_train = 8192;
  r.lr = 0.1;
  st.optimizer.scaling = "none";
  EXPECT_NEAR(run_budget(st, r).peak_lr, 0.1, 1e-15);
  st.optimizer.scaling = "linear";
  EXPECT_NEAR(run_budget(st, r).peak_lr, 0.4, 1e-15);
  st.optimizer.scaling = "sqrt";
  EXPECT_NEAR(run_budget(st, r).peak_lr, 0.2, 1e-15);
  r.batch_per_rank = {32};  // B = ref/4
  EXPECT_NEAR(run_budget(st, r).peak_lr, 0.05, 1e-15);
  st.optimizer.scaling = "linear";
  EXPECT_NEAR(run_budget(st, r).peak_lr, 0.025, 1e-15);
}

TEST(RunBudget, AdamBeta2HalfLifeInSamples) {
  Study st = parse_study(
      "study: s\nbudget: {steps: 5}\noptimizer: {name: adam, ref_batch: 128, betas: [0.9, 0.99], "
      "beta2_scaling: half_life}\nsweep: {global_batch: [32, 128, 512]}\n",
      kLabel);
  ASSERT_EQ(st.runs.size(), 3u);
  EXPECT_NEAR(run_budget(st, st.runs[0]).beta2, std::pow(0.99, 0.25), 1e-15);  // B = ref/4
  EXPECT_DOUBLE_EQ(run_budget(st, st.runs[1]).beta2, 0.99);                    // B = ref
  EXPECT_NEAR(run_budget(st, st.runs[2]).beta2, std::pow(0.99, 4.0), 1e-15);   // B = 4 ref
  // Constant half-life in samples: B * ln 2 / -ln(beta2) is the same at every batch.
  for (const auto& r : st.runs) {
    const double half_life = static_cast<double>(r.global_batch()) * std::log(0.5) / std::log(run_budget(st, r).beta2);
    EXPECT_NEAR(half_life, 128 * std::log(0.5) / std::log(0.99), 1e-6) << r.name;
  }
  EXPECT_NE(run_yaml(st, st.runs[2]).find("beta2: 0.96"), std::string::npos) << run_yaml(st, st.runs[2]);
  st.optimizer.beta2_scaling = "none";
  EXPECT_DOUBLE_EQ(run_budget(st, st.runs[2]).beta2, 0.99);
}

// ---------------------------------------------------------------- noise EMA

TEST(GnsEma, SamplesWindowGivesTheSameDataAtEveryBatch) {
  Study st = parse_study(kSweepStudy, kLabel, {"gns.ema_samples=4096"});
  EXPECT_DOUBLE_EQ(st.gns.ema_samples, 4096.0);
  EXPECT_DOUBLE_EQ(st.gns.step_beta(32), std::exp(-32.0 / 4096));
  EXPECT_DOUBLE_EQ(st.gns.step_beta(512), std::exp(-512.0 / 4096));
  // After W samples, whatever the batch, the oldest sample's weight has decayed by e.
  for (int64_t B : {8, 32, 128, 512, 4096}) {
    const double steps = 4096.0 / static_cast<double>(B);
    EXPECT_NEAR(std::pow(st.gns.step_beta(B), steps), std::exp(-1.0), 1e-12) << B;
  }
}

TEST(GnsEma, EmaBetaCountsStepsWhateverTheBatch) {
  Study st = parse_study(kSweepStudy, kLabel, {"gns.ema_beta=0.95"});
  EXPECT_DOUBLE_EQ(st.gns.ema_samples, 0.0);
  EXPECT_DOUBLE_EQ(st.gns.step_beta(32), 0.95);
  EXPECT_DOUBLE_EQ(st.gns.step_beta(512), 0.95);
  EXPECT_NE(st.resolved_yaml.find("ema_beta: 0.9"), std::string::npos);
  EXPECT_EQ(st.resolved_yaml.find("ema_samples"), std::string::npos);
  // The default is the sample window, and it round-trips.
  Study d = parse_study(kSweepStudy, kLabel);
  EXPECT_DOUBLE_EQ(d.gns.step_beta(100), std::exp(-0.01));
  Study again = parse_study(d.resolved_yaml, "resolved.yaml");
  EXPECT_DOUBLE_EQ(again.gns.step_beta(100), d.gns.step_beta(100));
  Study steps_again = parse_study(st.resolved_yaml, "resolved.yaml");
  EXPECT_DOUBLE_EQ(steps_again.gns.step_beta(100), 0.95);
}

// ---------------------------------------------------------------- quickstart

TEST(LoadStudy, Quickstart) {
  Study st = load_study(std::string(BATCHSCOPE_SOURCE_DIR) + "/configs/quickstart.yaml");
  EXPECT_EQ(st.name, "quickstart");
  EXPECT_EQ(st.seed, 7u);
  EXPECT_EQ(st.data.name, "fashion-mnist");
  EXPECT_EQ(st.data.effective_train_size(), 60000);
  EXPECT_EQ(st.model.hidden, (std::vector<int64_t>{256, 128}));
  EXPECT_EQ(st.optimizer.scaling, "sqrt");
  ASSERT_EQ(st.runs.size(), 9u);  // 3 batches x 3 learning rates
  const std::vector<std::vector<int64_t>> splits{{8, 24}, {32, 96}, {128, 384}};
  for (size_t i = 0; i < 9; ++i) {
    EXPECT_EQ(st.runs[i].batch_per_rank, splits[i / 3]);
    EXPECT_EQ(st.runs[i].ranks(), 2);
  }
  EXPECT_EQ(st.runs[0].name, "b32_lr0.025_s1");
  EXPECT_EQ(st.runs[4].name, "b128_lr0.05_s1");
  RunBudget rb = run_budget(st, st.runs[4]);
  EXPECT_EQ(rb.steps_per_epoch, 60000 / 128);
  EXPECT_EQ(rb.total_steps, 60000 / 128);  // 1 epoch
  EXPECT_NEAR(rb.peak_lr, 0.05, 1e-12);    // B == ref_batch

  // Overrides on a loaded file; the file label is the path.
  Study small = load_study(std::string(BATCHSCOPE_SOURCE_DIR) + "/configs/quickstart.yaml",
                           {"budget.epochs=null", "budget.steps=10", "sweep.global_batch=[64]", "sweep.lr=[0.05]"});
  ASSERT_EQ(small.runs.size(), 1u);
  EXPECT_EQ(small.runs[0].batch_per_rank, (std::vector<int64_t>{16, 48}));
  EXPECT_EQ(run_budget(small, small.runs[0]).total_steps, 10);
  EXPECT_NE(small.file.find("quickstart.yaml"), std::string::npos);
}

TEST(LoadStudy, MissingFileNamesThePath) {
  const std::string path = "/nonexistent-batchscope-dir/no_such_study.yaml";
  try {
    load_study(path);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cannot read"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- bad input

struct BadCase {
  const char* name;
  std::string yaml;
  std::vector<std::string> overrides;
  std::string key;                 // expected ConfigError::key()
  std::vector<std::string> words;  // all must appear in what()
};

// The minimal valid body the cases perturb.
const std::string kOkBudget = "budget: {steps: 10}\n";
const std::string kOkSweep = "sweep: {global_batch: [64]}\n";
const std::string kOk = "study: s\n" + kOkBudget + kOkSweep;

std::vector<BadCase> bad_cases() {
  return {
      {"unknown_top_level_key",
       kOk + "optimiser: {lr: 0.1}\n",
       {},
       "optimiser",
       {"unknown key", "valid keys at the top level", "optimizer", "budget", "sweep"}},
      {"unknown_nested_key",
       kOk + "optimizer: {lrr: 0.1}\n",
       {},
       "optimizer.lrr",
       {"unknown key", "valid keys under 'optimizer'", "lr, ref_batch"}},
      {"bad_data_name",
       kOk + "data: {name: cifar}\n",
       {},
       "data.name",
       {"'cifar' is not valid", "expected one of: fashion-mnist, mnist, synthetic"}},
      {"bad_model_name", kOk + "model: {name: resnet}\n", {}, "model.name", {"expected one of: mlp, cnn"}},
      {"bad_optimizer_name",
       kOk + "optimizer: {name: rmsprop}\n",
       {},
       "optimizer.name",
       {"expected one of: sgd, adam"}},
      {"bad_scaling",
       kOk + "optimizer: {scaling: cubic}\n",
       {},
       "optimizer.scaling",
       {"expected one of: none, linear, sqrt"}},
      {"bad_schedule",
       kOk + "optimizer: {schedule: step}\n",
       {},
       "optimizer.schedule",
       {"expected one of: constant, cosine"}},
      {"bad_device", kOk + "device: tpu\n", {}, "device", {"'tpu' is not valid", "expected one of: auto, cpu, cuda"}},
      {"bad_comm_timeout", kOk + "comm_timeout_s: 0\n", {}, "comm_timeout_s", {"must be > 0 seconds"}},
      {"bad_comm", kOk + "comm: gloo\n", {}, "comm", {"expected one of: auto, mpi, nccl"}},
      {"bad_graphs", kOk + "gpu: {graphs: yes}\n", {}, "gpu.graphs", {"expected one of: auto, on, off"}},
      {"unknown_gpu_key", kOk + "gpu: {streams: 2}\n", {}, "gpu.streams", {"unknown key", "graphs"}},
      {"lr_zero", kOk + "optimizer: {lr: 0}\n", {}, "optimizer.lr", {"must be > 0"}},
      {"lr_negative", kOk + "optimizer: {lr: -0.1}\n", {}, "optimizer.lr", {"must be > 0"}},
      {"momentum_one", kOk + "optimizer: {momentum: 1}\n", {}, "optimizer.momentum", {"must be in [0, 1)"}},
      {"nesterov_without_momentum",
       kOk + "optimizer: {momentum: 0, nesterov: true}\n",
       {},
       "optimizer.nesterov",
       {"nesterov needs momentum > 0"}},
      {"betas_on_sgd",
       kOk + "optimizer: {name: sgd, betas: [0.9, 0.99]}\n",
       {},
       "optimizer.betas",
       {"only adam takes betas"}},
      {"momentum_on_adam",
       kOk + "optimizer: {name: adam, momentum: 0.9}\n",
       {},
       "optimizer.momentum",
       {"adam takes betas"}},
      {"budget_both",
       "study: s\nbudget: {epochs: 1, steps: 10}\n" + kOkSweep,
       {},
       "budget",
       {"set exactly one of budget.epochs (> 0) or budget.steps (> 0)"}},
      {"budget_missing", "study: s\n" + kOkSweep, {}, "budget", {"required", "budget: {epochs: E}"}},
      {"budget_empty", "study: s\nbudget: {}\n" + kOkSweep, {}, "budget", {"set exactly one of"}},
      {"seed_not_integer", kOk + "seed: abc\n", {}, "seed", {"expected an integer", "'abc'"}},
      {"seed_negative", kOk + "seed: -1\n", {}, "seed", {"must be >= 0"}},
      {"eval_every_steps_negative", kOk + "eval: {every_steps: -1}\n", {}, "eval.every_steps", {"must be >= 0"}},
      {"eval_both",
       kOk + "eval: {every_epochs: 0.5, every_steps: 10}\n",
       {},
       "eval.every_steps",
       {"set either eval.every_epochs or eval.every_steps, not both"}},
      {"ema_beta_one", kOk + "gns: {ema_beta: 1}\n", {}, "gns.ema_beta", {"must be in [0, 1)"}},
      {"ema_samples_zero", kOk + "gns: {ema_samples: 0}\n", {}, "gns.ema_samples", {"must be a number of samples > 0"}},
      {"ema_samples_negative",
       kOk + "gns: {ema_samples: -5}\n",
       {},
       "gns.ema_samples",
       {"must be a number of samples > 0", "gns.ema_beta"}},
      {"ema_samples_and_beta",
       kOk + "gns: {ema_samples: 5000, ema_beta: 0.9}\n",
       {},
       "gns.ema_samples",
       {"set either gns.ema_samples", "or gns.ema_beta", "not both"}},
      {"bad_beta2_scaling",
       kOk + "optimizer: {name: adam, beta2_scaling: sqrt}\n",
       {},
       "optimizer.beta2_scaling",
       {"expected one of: none, half_life"}},
      {"beta2_scaling_on_sgd",
       kOk + "optimizer: {name: sgd, beta2_scaling: half_life}\n",
       {},
       "optimizer.beta2_scaling",
       {"only adam takes beta2_scaling"}},
      {"sweep_global_batch_empty",
       "study: s\n" + kOkBudget + "sweep: {global_batch: []}\n",
       {},
       "sweep.global_batch",
       {"required: a list of global batch sizes"}},
      {"sweep_global_batch_missing",
       "study: s\n" + kOkBudget + "sweep: {lr: [0.1]}\n",
       {},
       "sweep.global_batch",
       {"required: a list of global batch sizes"}},
      {"split_length_mismatch",
       "study: s\n" + kOkBudget + "sweep: {global_batch: [64], ranks: 2, split: [1, 2, 3]}\n",
       {},
       "sweep.split",
       {"has 3 weights but ranks is 2", "one weight per rank"}},
      {"split_not_a_list",
       "study: s\n" + kOkBudget + "sweep: {global_batch: [64], ranks: 2, split: random}\n",
       {},
       "sweep.split",
       {"expected 'equal' or a list of per-rank weights"}},
      {"global_batch_smaller_than_ranks",
       "study: s\n" + kOkBudget + "sweep: {global_batch: [2], ranks: 4}\n",
       {},
       "sweep.global_batch",
       {"global batch 2 split over 4 ranks", "no samples", "fewer ranks"}},
      {"run_batch_zero",
       "study: s\n" + kOkBudget + "runs: [{name: a, batch: [16, 0]}]\n",
       {},
       "runs[0].batch",
       {"per-rank batch sizes must be positive"}},
      {"run_batch_missing",
       "study: s\n" + kOkBudget + "runs: [{name: a, lr: 0.1}]\n",
       {},
       "runs[0].batch",
       {"required: the per-rank batch sizes"}},
      {"run_unknown_key",
       "study: s\n" + kOkBudget + "runs: [{name: a, batch: [8], sed: 3}]\n",
       {},
       "runs[0].sed",
       {"unknown key", "valid keys under 'runs[0]'", "seed"}},
      {"duplicate_run_names",
       "study: s\n" + kOkBudget + "runs: [{name: a, batch: [8]}, {name: a, batch: [16]}]\n",
       {},
       "runs",
       {"two runs are named 'a'", "must be unique"}},
      {"sweep_duplicates_explicit_run",
       "study: s\n" + kOkBudget + "runs: [{batch: [64], lr: 0.05}]\n" + kOkSweep,
       {},
       "runs",
       {"two runs are named 'b64_lr0.05_s1'"}},
      {"no_runs_no_sweep", "study: s\n" + kOkBudget, {}, "runs", {"the study has no runs", "sweep"}},
      {"hidden_with_cnn",
       kOk + "model: {name: cnn, hidden: [128]}\n",
       {},
       "model.hidden",
       {"only the mlp model takes hidden sizes"}},
      {"hidden_negative",
       kOk + "model: {name: mlp, hidden: [128, -4]}\n",
       {},
       "model.hidden",
       {"hidden sizes must be positive integers"}},
      {"global_batch_larger_than_train_size",
       "study: s\n" + kOkBudget + "data: {name: synthetic, synthetic_train: 100}\nsweep: {global_batch: [128]}\n",
       {},
       "sweep.global_batch",
       {"global batch 128 exceeds the training set", "data.train_size = 100", "<= 100"}},
      {"microbatches_zero", kOk + "gns: {microbatches: 0}\n", {}, "gns.microbatches", {"must be between 1"}},
      {"microbatches_larger_than_batch",
       "study: s\n" + kOkBudget + "gns: {microbatches: 8}\nruns: [{name: a, batch: [4, 60]}]\n",
       {},
       "gns.microbatches",
       {"8 micro-batches do not fit run 'a'", "smallest per-rank batch is 4"}},
      {"target_bad_metric",
       kOk + "target: {metric: top5, value: 0.1}\n",
       {},
       "target.metric",
       {"'top5' is not valid", "val_error, val_acc, val_loss, train_loss"}},
      {"target_value_missing",
       kOk + "target: {metric: val_error}\n",
       {},
       "target.value",
       {"required with a target metric"}},
      {"target_error_out_of_range",
       kOk + "target: {metric: val_error, value: 1.5}\n",
       {},
       "target.value",
       {"must be in (0, 1)"}},
      {"target_unknown_key",
       kOk + "target: {metric: val_loss, value: 0.3, stopp: true}\n",
       {},
       "target.stopp",
       {"unknown key", "metric, value, stop"}},
      {"checkpoint_negative_steps",
       kOk + "checkpoint: {every_steps: -1}\n",
       {},
       "checkpoint.every_steps",
       {"must be >= 0"}},
      {"checkpoint_unknown_key",
       kOk + "checkpoint: {every_hours: 1}\n",
       {},
       "checkpoint.every_hours",
       {"unknown key", "every_steps, every_minutes"}},
      {"run_batch_larger_than_train_size",
       "study: s\n" + kOkBudget + "data: {name: synthetic, synthetic_train: 100}\nruns: [{name: a, batch: [60, 60]}]\n",
       {},
       "runs[0].batch",
       {"global batch 120 exceeds the training set", "<= 100"}},
      {"train_size_larger_than_dataset",
       kOk + "data: {name: fashion-mnist, train_size: 70000}\n",
       {},
       "data.train_size",
       {"must be between 1 and 60000"}},
      {"yaml_syntax_error", "study: [unclosed\nbudget: {steps: 1}\n", {}, "", {"not valid YAML"}},
      {"top_level_not_mapping", "- study\n- budget\n", {}, "", {"expected a mapping at the top level"}},
      {"section_not_mapping", kOk + "optimizer: sgd\n", {}, "optimizer", {"expected a mapping of keys", "'sgd'"}},
      {"set_without_equals", kOk, {"budget.steps"}, "", {"--set budget.steps", "expected --set KEY=VALUE"}},
      {"set_empty_component", kOk, {"budget..steps=3"}, "budget..steps", {"empty component"}},
      {"set_key_under_scalar", kOk, {"study.x=1"}, "study.x", {"'study' is not a mapping"}},
      {"set_key_deep_under_scalar", kOk, {"study.x.y=1"}, "study.x.y", {"'study' is not a mapping"}},
      {"mnist_without_root", kOk + "data: {name: mnist}\n", {}, "data.root", {"required for mnist"}},
      {"hdf5_without_path", kOk + "data: {name: hdf5}\n", {}, "data.path", {"required for hdf5"}},
      {"hdf5_path_missing",
       kOk + "data: {name: hdf5, path: /nonexistent/batchscope.h5}\n",
       {},
       "data.path",
       {"'/nonexistent/batchscope.h5' does not exist or is not a file"}},
      {"hdf5_path_is_a_folder", kOk + "data: {name: hdf5, path: /}\n", {}, "data.path", {"is not a file"}},
      {"hdf5_with_root",
       kOk + "data: {name: hdf5, root: /data, path: d.h5}\n",
       {},
       "data.root",
       {"hdf5 reads data.path"}},
      {"hdf5_key_with_idx_data",
       kOk + "data: {name: fashion-mnist, train_x: /x}\n",
       {},
       "data.train_x",
       {"only data.name hdf5 takes train_x", "data.name is fashion-mnist"}},
      {"hdf5_mean_with_synthetic",
       kOk + "data: {name: synthetic, mean: 0.5}\n",
       {},
       "data.mean",
       {"only data.name hdf5 takes mean"}},
      {"sweep_ranks_zero",
       "study: s\n" + kOkBudget + "sweep: {global_batch: [64], ranks: 0}\n",
       {},
       "sweep.ranks",
       {"must be between 1 and 4096"}},
      {"missing_study_name", kOkBudget + kOkSweep, {}, "study", {"required", "file-name-safe study name"}},
      {"run_not_mapping",
       "study: s\n" + kOkBudget + "runs: [3]\n",
       {},
       "runs[0]",
       {"expected a mapping of keys", "'3'"}},
      // A misspelt key is reported before the error its absence causes.
      {"misspelt_budget",
       "study: s\nbudgett: {steps: 10}\n" + kOkSweep,
       {},
       "budgett",
       {"unknown key", "valid keys at the top level", "budget"}},
      {"misspelt_study", "studdy: s\n" + kOkBudget + kOkSweep, {}, "studdy", {"unknown key"}},
      {"misspelt_sweep_ranks",
       "study: s\n" + kOkBudget + "sweep: {global_batch: [64], rnks: 2, split: [1, 3]}\n",
       {},
       "sweep.rnks",
       {"unknown key", "valid keys under 'sweep': global_batch, lr, seed, ranks, split"}},
      {"misspelt_target_metric",
       kOk + "target: {metrc: val_loss, value: 3}\n",
       {},
       "target.metrc",
       {"unknown key", "metric, value, stop"}},
      // Keys that are optional and absent are still valid keys.
      {"unknown_key_from_set",
       kOk,
       {"optimizer.lrr=3"},
       "optimizer.lrr",
       {"unknown key (from --set)",
        "name, lr, ref_batch, scaling, beta2_scaling, schedule, warmup_epochs, warmup_steps, momentum, "
        "nesterov, weight_decay, betas, eps"}},
      {"run_unknown_key_lists_all",
       "study: s\n" + kOkBudget + "runs: [{batch: [8], rank: 1}]\n",
       {},
       "runs[0].rank",
       {"valid keys under 'runs[0]': name, batch, lr, seed, ranks"}},
      // yaml-cpp keeps both entries of a key given twice and reads the first.
      {"duplicate_nested_key",
       kOk + "optimizer:\n  lr: 0.05\n  lr: 0.5\n",
       {},
       "optimizer.lr",
       {"given twice, at lines 5 and 6", "takes each key once"}},
      {"duplicate_top_level_key", kOk + "seed: 1\nseed: 2\n", {}, "seed", {"given twice, at lines 4 and 5"}},
      {"duplicate_key_in_run",
       "study: s\n" + kOkBudget + "runs:\n  - {batch: [8], lr: 0.1, lr: 0.2}\n",
       {},
       "runs[0].lr",
       {"given twice, at line 4, columns 18 and 27"}},
      {"duplicate_key_in_set",
       kOk,
       {"optimizer={lr: 1, lr: 2}"},
       "optimizer.lr",
       {"(--set optimizer={lr: 1, lr: 2})", "given twice, at line 1, columns 2 and 9"}},
  };
}

// Failure messages name the case, not its bytes.
void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class BadInput : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadInput, ThrowsConfigErrorNamingFileKeyAndValidValues) {
  const BadCase& c = GetParam();
  SCOPED_TRACE(c.yaml);
  try {
    parse_study(c.yaml, kLabel, c.overrides);
    FAIL() << "expected a ConfigError for case " << c.name;
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    RecordProperty("message", msg);
    EXPECT_EQ(msg.rfind(kLabel, 0), 0u) << "message must start with the file label: " << msg;
    EXPECT_NE(e.file().find(kLabel), std::string::npos) << e.file();
    EXPECT_EQ(e.key(), c.key) << msg;
    if (!c.key.empty()) {
      EXPECT_NE(msg.find("key '" + c.key + "'"), std::string::npos) << msg;
    }
    for (const auto& w : c.words) EXPECT_NE(msg.find(w), std::string::npos) << "missing '" << w << "' in: " << msg;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, BadInput, ::testing::ValuesIn(bad_cases()),
                         [](const ::testing::TestParamInfo<BadCase>& info) { return std::string(info.param.name); });

TEST(BadInputTable, HasAtLeastTwentyCases) { EXPECT_GE(bad_cases().size(), 20u); }

TEST(BadInput, ReasonIsTheMessageWithoutFileAndKey) {
  try {
    parse_study(kOk + "optimizer: {lr: -1}\n", kLabel);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.reason(), "must be > 0 (line 4)");
    EXPECT_EQ(std::string(e.what()), std::string(kLabel) + ": key 'optimizer.lr': " + e.reason());
  }
}

// A mapping reached twice through an alias is one mapping, not a duplicate;
// a key given twice inside it is still one error.
TEST(DuplicateKeys, AliasedMappingIsCheckedOnce) {
  EXPECT_NO_THROW(reject_duplicate_keys(YAML::Load("x: &A {a: 1, b: 2}\ny: *A\nz: [*A, *A]\n"), kLabel, ""));
  try {
    reject_duplicate_keys(YAML::Load("x: &A {a: 1, a: 2}\ny: *A\n"), kLabel, "top");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "top.x.a");
  }
}

// The file's study is refused whichever of the two values it would have used.
TEST(DuplicateKeys, SameValueTwiceIsStillAnError) {
  EXPECT_THROW(parse_study(kOk + "optimizer: {lr: 0.1, lr: 0.1}\n", kLabel), ConfigError);
}

// Without a metric, target.value and target.stop are not read (nor checked).
TEST(ParseStudy, TargetWithMetricNoneIgnoresValueAndStop) {
  Study st = parse_study(kOk + "target: {metric: none, value: abc, stop: 7}\n", kLabel);
  EXPECT_FALSE(st.target.enabled());
}

TEST(BadInputLines, ErrorNamesTheLineOfTheOffendingValue) {
  try {
    parse_study("study: s\nbudget: {steps: 10}\nsweep: {global_batch: [64]}\noptimizer:\n  lr: -1\n", kLabel);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("(line 5)"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- data.name: hdf5

// An HDF5 file with the four default datasets: x uint8 [rows, 4], y int64
// [rows] (unwritten: the parser reads only the headers).
void write_hdf5(const std::string& path, hsize_t train_rows, hsize_t test_rows) {
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(f, 0) << path;
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  auto put = [&](const char* name, hid_t type, std::vector<hsize_t> dims) {
    hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    H5Dclose(H5Dcreate2(f, name, type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT));
    H5Sclose(space);
  };
  put("/train/x", H5T_STD_U8LE, {train_rows, 4});
  put("/train/y", H5T_STD_I64LE, {train_rows});
  put("/test/x", H5T_STD_U8LE, {test_rows, 4});
  put("/test/y", H5T_STD_I64LE, {test_rows});
  H5Pclose(lcpl);
  H5Fclose(f);
}

std::string hdf5_study(const std::string& data) {
  return "study: h\ndata: " + data + "\nbudget: {steps: 5}\nsweep: {global_batch: [100]}\n";
}

TEST(Hdf5Data, ParserReadsTheRowsOfTheFile) {
  test::TempDir dir;
  const std::string path = dir.file("d.h5");
  write_hdf5(path, 300, 50);
  Study st = parse_study(hdf5_study("{name: hdf5, path: " + path + "}"), kLabel);
  EXPECT_EQ(st.data.path, path);
  EXPECT_EQ(st.data.train_x, "/train/x");
  EXPECT_EQ(st.data.test_y, "/test/y");
  EXPECT_TRUE(std::isnan(st.data.mean));
  EXPECT_EQ(st.data.hdf5_train_rows, 300);
  EXPECT_EQ(st.data.hdf5_test_rows, 50);
  EXPECT_EQ(st.data.full_train_size(), 300);
  EXPECT_EQ(st.data.effective_test_size(), 50);
  EXPECT_EQ(run_budget(st, st.runs[0]).steps_per_epoch, 3);
  // The resolved YAML names the file and its datasets (no root), not mean and
  // stdev when they are computed, and resolves to itself.
  EXPECT_NE(st.resolved_yaml.find("data:\n  name: hdf5\n  path: " + path +
                                  "\n  train_x: /train/x\n  train_y: /train/y\n  test_x: /test/x\n"
                                  "  test_y: /test/y\n  train_size: 300\n  test_size: 50\nmodel:"),
            std::string::npos)
      << st.resolved_yaml;
  EXPECT_EQ(parse_study(st.resolved_yaml, "resolved.yaml").resolved_yaml, st.resolved_yaml);
}

TEST(Hdf5Data, GivenKeysAreKeptAndRoundTrip) {
  test::TempDir dir;
  const std::string path = dir.file("d.h5");
  {
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[2] = {200, 3};
    hid_t space = H5Screate_simple(2, dims, nullptr);
    for (const char* name : {"xa", "ya", "xb", "yb"})
      H5Dclose(H5Dcreate2(f, name, H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Sclose(space);
    H5Fclose(f);
  }
  Study st = parse_study(hdf5_study("{name: hdf5, path: " + path +
                                    ", train_x: xa, train_y: /ya, test_x: /xb, test_y: yb, mean: 0.25, stdev: 0.5, "
                                    "train_size: 150, test_size: 20}"),
                         kLabel);
  EXPECT_EQ(st.data.train_x, "xa");
  EXPECT_DOUBLE_EQ(st.data.mean, 0.25);
  EXPECT_DOUBLE_EQ(st.data.stdev, 0.5);
  EXPECT_EQ(st.data.full_train_size(), 200);
  EXPECT_EQ(st.data.effective_train_size(), 150);
  EXPECT_NE(st.resolved_yaml.find("  train_x: xa\n  train_y: /ya\n  test_x: /xb\n  test_y: yb\n  mean: 0.25\n"
                                  "  stdev: 0.5\n  train_size: 150\n  test_size: 20\n"),
            std::string::npos)
      << st.resolved_yaml;
  EXPECT_EQ(parse_study(st.resolved_yaml, "resolved.yaml").resolved_yaml, st.resolved_yaml);
}

// A ConfigError from parse_study: its key, and words of its message.
void expect_config_error(const std::string& yaml, const std::string& key, const std::vector<std::string>& words) {
  try {
    parse_study(yaml, kLabel);
    ADD_FAILURE() << "parsed: " << yaml;
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), key) << e.what();
    for (const auto& w : words) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << w << " in " << e.what();
  }
}

// eval.sharpness: off when absent (and not in the resolved YAML), on with
// defaults for {}, its values checked naming the key.
TEST(Sharpness, OffByDefaultOnWhenGivenAndChecked) {
  const Study off = parse_study(kOk, kLabel);
  EXPECT_FALSE(off.eval.sharpness.enabled());
  EXPECT_EQ(off.resolved_yaml.find("sharpness"), std::string::npos);
  const Study on = parse_study(kOk + "eval: {train_subset: 4000, sharpness: {}}\n", kLabel);
  EXPECT_TRUE(on.eval.sharpness.enabled());
  EXPECT_EQ(on.eval.sharpness.every, 4);
  EXPECT_EQ(on.eval.sharpness.iterations, 20);
  EXPECT_EQ(on.eval.sharpness.samples, 256);
  EXPECT_DOUBLE_EQ(on.eval.sharpness.tolerance, 1e-2);
  EXPECT_FALSE(on.eval.sharpness.at_start);
  EXPECT_TRUE(parse_study(kOk + "eval: {sharpness: {at_start: true}}\n", kLabel).eval.sharpness.at_start);
  const Study set = parse_study(kOk + "eval: {sharpness: {every: 4, iterations: 7, samples: 100, tolerance: 0}}\n",
                                kLabel, {"eval.sharpness.samples=64"});
  EXPECT_EQ(set.eval.sharpness.every, 4);
  EXPECT_EQ(set.eval.sharpness.samples, 64);
  EXPECT_NE(set.resolved_yaml.find("sharpness:\n    every: 4\n    iterations: 7\n    samples: 64\n"), std::string::npos)
      << set.resolved_yaml;
  EXPECT_EQ(parse_study(set.resolved_yaml, "resolved.yaml").resolved_yaml, set.resolved_yaml);
  expect_config_error(kOk + "eval: {train_subset: 1000, sharpness: {samples: 2000}}\n", "eval.sharpness.samples",
                      {"between 1 and eval.train_subset (1000)"});
  expect_config_error(kOk + "eval: {sharpness: {samples: 0}}\n", "eval.sharpness.samples", {"between 1"});
  expect_config_error(kOk + "eval: {sharpness: {every: 0}}\n", "eval.sharpness.every", {"must be >= 1"});
  expect_config_error(kOk + "eval: {sharpness: {iterations: 0}}\n", "eval.sharpness.iterations", {"between 1"});
  expect_config_error(kOk + "eval: {sharpness: {tolerance: -1}}\n", "eval.sharpness.tolerance", {"must be >= 0"});
  expect_config_error(kOk + "eval: {sharpness: {iteration: 5}}\n", "eval.sharpness.iteration", {"iterations"});
  expect_config_error(kOk + "eval: {sharpness: {at_start: 2}}\n", "eval.sharpness.at_start", {"true or false"});
}

TEST(Hdf5Data, SizesAreBoundedByTheFile) {
  test::TempDir dir;
  const std::string path = dir.file("d.h5");
  write_hdf5(path, 300, 50);
  expect_config_error(hdf5_study("{name: hdf5, path: " + path + ", train_size: 301}"), "data.train_size",
                      {"must be between 1 and 300"});
  expect_config_error(hdf5_study("{name: hdf5, path: " + path + ", test_size: 51}"), "data.test_size",
                      {"must be between 1 and 50"});
  expect_config_error(
      "study: h\ndata: {name: hdf5, path: " + path + "}\nbudget: {steps: 5}\nsweep: {global_batch: [512]}\n",
      "sweep.global_batch", {"global batch 512 exceeds the training set", "<= 300"});
}

TEST(Hdf5Data, StdevMustBePositive) {
  test::TempDir dir;
  const std::string path = dir.file("d.h5");
  write_hdf5(path, 300, 50);
  expect_config_error(hdf5_study("{name: hdf5, path: " + path + ", stdev: 0}"), "data.stdev", {"must be > 0"});
  expect_config_error(hdf5_study("{name: hdf5, path: " + path + ", train_y: ''}"), "data.train_y",
                      {"must name a dataset"});
}

TEST(Hdf5Data, MissingDatasetIsADataErrorListingTheFilesDatasets) {
  test::TempDir dir;
  const std::string path = dir.file("d.h5");
  write_hdf5(path, 300, 50);
  try {
    parse_study(hdf5_study("{name: hdf5, path: " + path + ", test_y: /test/labels}"), kLabel);
    FAIL();
  } catch (const DataError& e) {
    const std::string m = e.what();
    for (const std::string w : {path, std::string("data.test_y"), std::string("'/test/labels'"),
                                std::string("/test/x (uint8 [50, 4])"), std::string("/test/y (int64 [50])"),
                                std::string("/train/x (uint8 [300, 4])"), std::string("/train/y (int64 [300])")})
      EXPECT_NE(m.find(w), std::string::npos) << w << " in " << m;
  }
}

TEST(Hdf5Data, FileThatIsNotHdf5IsADataError) {
  test::TempDir dir;
  const std::string path = dir.file("d.csv");
  std::ofstream(path) << "1,2,3\n";
  try {
    parse_study(hdf5_study("{name: hdf5, path: " + path + "}"), kLabel);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(path + " (data.path) is not an HDF5 file"), std::string::npos) << e.what();
  }
}

TEST(Hdf5Data, Hdf5KeysAreRefusedWithOtherData) {
  for (const char* name : {"fashion-mnist", "mnist", "synthetic"})
    for (const char* key : {"path", "train_x", "train_y", "test_x", "test_y", "mean", "stdev"}) {
      SCOPED_TRACE(std::string(name) + " " + key);
      const std::string value = std::string(key) == "mean" || std::string(key) == "stdev" ? "0.5" : "/a";
      expect_config_error(kOk + "data: {name: " + name + ", root: /r, " + key + ": " + value + "}\n",
                          std::string("data.") + key, {std::string("only data.name hdf5 takes ") + key});
    }
}

TEST(StudyKeys, ListsTheHdf5Keys) {
  const auto keys = study_keys();
  for (const char* k :
       {"data.path", "data.train_x", "data.train_y", "data.test_x", "data.test_y", "data.mean", "data.stdev"})
    EXPECT_NE(std::find(keys.begin(), keys.end(), k), keys.end()) << k;
}

// ---------------------------------------------------------------- README key list

// The README's study-file example: the ```yaml block under "## A study file".
std::vector<std::string> readme_example() {
  std::ifstream in(std::string(BATCHSCOPE_SOURCE_DIR) + "/README.md");
  std::vector<std::string> lines;
  bool section = false, block = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("## ", 0) == 0)
      section = line == "## A study file";
    else if (section && !block && line == "```yaml")
      block = true;
    else if (block && line == "```")
      break;
    else if (block)
      lines.push_back(line);
  }
  return lines;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  return text;
}

// The example's keys, dotted as study_keys() names them (runs[].batch).
void add_example_keys(const YAML::Node& map, const std::string& prefix, std::vector<std::string>& keys) {
  for (auto it = map.begin(); it != map.end(); ++it) {
    const std::string key = prefix + it->first.as<std::string>();
    const YAML::Node value = it->second;
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    if (value.IsMap()) add_example_keys(value, key + ".", keys);
    if (value.IsSequence())  // a list of mappings: runs
      for (const YAML::Node& item : value)
        if (item.IsMap()) add_example_keys(item, key + "[].", keys);
  }
}

std::vector<std::string> example_keys(const std::vector<std::string>& lines) {
  std::vector<std::string> keys;
  add_example_keys(YAML::Load(joined(lines)), "", keys);
  return keys;
}

// The example's lines of one top-level section, comments included: from
// "section:" to the next line that starts in column 0.
std::string section_text(const std::vector<std::string>& lines, const std::string& section) {
  std::string text;
  bool in = false;
  for (const auto& l : lines) {
    if (!l.empty() && l[0] != ' ') in = l.rfind(section + ":", 0) == 0;
    if (in) text += l + "\n";
  }
  return text;
}

bool names_word(const std::string& text, const std::string& word) {
  auto is_word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
    const size_t end = at + word.size();
    if ((at == 0 || !is_word(text[at - 1])) && (end == text.size() || !is_word(text[end]))) return true;
  }
  return false;
}

TEST(StudyKeys, ListsOptionalKeysAndRunKeys) {
  const auto keys = study_keys();
  for (const char* k : {"study", "data.synthetic_noise", "optimizer.betas", "budget.steps", "target.stop",
                        "checkpoint.every_minutes", "runs", "runs[].ranks", "sweep.split"})
    EXPECT_NE(std::find(keys.begin(), keys.end(), k), keys.end()) << k;
}

TEST(ReadmeKeys, ExampleIsAValidStudy) {
  const auto lines = readme_example();
  ASSERT_GT(lines.size(), 20u) << "no ```yaml block under '## A study file' in README.md";
  EXPECT_NO_THROW(parse_study(joined(lines), "README.md"));
}

TEST(ReadmeKeys, EveryKeyInTheExampleIsAccepted) {
  const auto accepted = study_keys();
  for (const auto& k : example_keys(readme_example()))
    EXPECT_NE(std::find(accepted.begin(), accepted.end(), k), accepted.end())
        << "README.md documents '" << k << "', which the study parser does not accept";
}

// Alternatives (budget.steps beside budget.epochs) cannot both be keys of a
// valid example, so a key counts as documented when its section of the
// example names it, as a key or in a comment.
TEST(ReadmeKeys, EveryAcceptedKeyIsDocumented) {
  const auto lines = readme_example();
  const auto documented = example_keys(lines);
  for (const auto& k : study_keys()) {
    const size_t dot = k.rfind('.');
    if (dot == std::string::npos) {
      EXPECT_NE(std::find(documented.begin(), documented.end(), k), documented.end())
          << "top-level key '" << k << "' is missing from the README's study-file example";
      continue;
    }
    const std::string section = k.substr(0, k.find_first_of(".["));
    EXPECT_TRUE(names_word(section_text(lines, section), k.substr(dot + 1)))
        << "key '" << k << "' is not named under '" << section << ":' in the README's study-file example";
  }
}

}  // namespace
}  // namespace bs
