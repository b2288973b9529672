#pragma once
// `batchscope bench`: times the real training step (the Trainer, with its
// gradient-noise statistics and communicator) on one model and per-rank batch,
// and prints one JSON line shaped like the reference baseline's
// (../shared/baselines/torch_ddp_baseline.py), so tests/bench/compare.py can
// run both in one invocation and report the ratio. Measuring only: the
// comparison and the table live in that script.
#include <string>

#include "comm/mpi_env.h"

namespace bs {

struct BenchOptions {
  std::string model = "mlp";    // mlp (784-512-256-10, the baseline's) | cnn
  std::string model_file;       // a TorchScript module instead (model name torchscript)
  std::string data_root;        // Fashion-MNIST IDX folder; empty: Debian's
  std::string device = "auto";  // auto | cpu | cuda
  std::string comm = "auto";    // auto | mpi | nccl
  std::string graphs = "auto";  // auto | on | off (gpu.graphs)
  int batch = 128;              // per rank
  int steps = 300;              // timed steps (rounded up to a multiple of warmup)
  int warmup = 30;              // untimed steps before; also the host read-back interval
  int threads = 0;              // LibTorch threads per rank; 0: cores / ranks on the node
  // Switches that measure the instrumentation's cost (tests/bench/compare.py
  // --instrumentation): the noise statistics off; the run file written, as
  // `run` writes it, into this folder (empty: no file).
  bool noise_statistics = true;
  std::string trace_dir;
  // --pair stats|trace: both sides of one switch in this one process,
  // alternated for pair_rounds rounds, and the ratio of their step times
  // (separate processes drift by +-10 % on a small machine, more than the
  // few per cent being measured). Empty: one run as the switches above say.
  // 10 rounds: 20 short runs, enough for an order-statistic interval of the
  // median ratio at ~98 % (the 2nd to the 9th of the sorted ratios).
  std::string pair;
  int pair_rounds = 10;
};

// Collective over the world (one replica group of every rank). Returns the
// exit code; rank 0 prints the JSON line. Throws like `run`.
int run_bench(const BenchOptions& options, const MpiEnv& env);

}  // namespace bs
