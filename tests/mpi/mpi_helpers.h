#pragma once
#include <cstdlib>
#include <stdexcept>
// Shared by the MPI tests: a small real study, communicators over chosen world
// ranks, and a sink that keeps what the trainer measured.
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <mpi.h>

#include "comm/mpi_communicator.h"
#include "config/study.h"
#include "train/trainer.h"

namespace bs::test {

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
inline int world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

// Collective over the world: ranks with color < 0 get nullptr.
inline std::unique_ptr<MpiCommunicator> split(int color) {
  MPI_Comm c = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, color < 0 ? MPI_UNDEFINED : color, world_rank(), &c);
  return c == MPI_COMM_NULL ? nullptr : std::make_unique<MpiCommunicator>(c);
}

// Fashion-MNIST, cut small so a test run takes a second or two. tests/run.sh
// installs the Debian dataset; without it the study fails with a clear error.
// `model`: the study's model line.
inline Study small_study_with(const std::string& model, const std::string& extra = "") {
  return parse_study(R"(
study: mpi-test
seed: 3
data: {name: fashion-mnist, train_size: 4096, test_size: 1000}
)" + model + R"(
optimizer: {name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 0.0001}
budget: {steps: 40}
eval: {every_steps: 20, train_subset: 1000}
log: {every_steps: 8}
runs:
  - {name: dummy, batch: [64]}
)" + extra,
                     "mpi-test.yaml");
}

inline Study small_study(const std::string& extra = "") {
  return small_study_with("model: {name: mlp, hidden: [64, 32]}", extra);
}

// A TorchScript module of tests/tools/make_torchscript.py, which ctest runs
// first (fixture torchscript_models) into BS_TORCHSCRIPT_DIR.
inline Study torchscript_study(const std::string& file, const std::string& extra = "") {
  const char* dir = std::getenv("BS_TORCHSCRIPT_DIR");
  if (dir == nullptr) throw std::runtime_error("BS_TORCHSCRIPT_DIR is not set: run this test through ctest");
  return small_study_with("model: {name: torchscript, path: '" + std::string(dir) + "/" + file + "'}", extra);
}

struct KeepSink : RecordSink {
  std::vector<StepRecord> steps;
  std::vector<EvalRecord> evals;
  void on_steps(const std::vector<StepRecord>& rows) override { steps.insert(steps.end(), rows.begin(), rows.end()); }
  void on_eval(const EvalRecord& e) override { evals.push_back(e); }
};

inline RunSpec run_spec(const std::string& name, std::vector<int64_t> batch, uint64_t seed, double lr = 0.05) {
  RunSpec r;
  r.name = name;
  r.batch_per_rank = std::move(batch);
  r.seed = seed;
  r.lr = lr;
  return r;
}

// Float vectors through MPI, so rank 0 can compare what another rank holds.
inline std::vector<double> bcast(std::vector<double> v, int root) {
  int n = static_cast<int>(v.size());
  MPI_Bcast(&n, 1, MPI_INT, root, MPI_COMM_WORLD);
  v.resize(static_cast<size_t>(n));
  MPI_Bcast(v.data(), n, MPI_DOUBLE, root, MPI_COMM_WORLD);
  return v;
}

}  // namespace bs::test
