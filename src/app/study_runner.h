#pragma once
// `batchscope run`: every rank trains its group's queue of runs; group leaders
// write run files and report to world rank 0, which prints and summarizes.
#include "config/study.h"
#include "placement/device_plan.h"
#include "placement/layout.h"
#include "comm/mpi_env.h"

namespace bs {

// Exit code of a job stopped by SIGTERM/SIGUSR1 after checkpointing (EX_TEMPFAIL):
// the scheduler should requeue it and the next job continue with --resume.
inline constexpr int kExitPreempted = 75;

struct RunOptions {
  bool overwrite = false;
  bool resume = false;
  int threads = 0;  // 0: cores on this node / ranks on this node
};

// Returns the process exit code; throws on errors that end the job.
int run_study(const Study& study, const Layout& layout, const DevicePlan& devices, const MpiEnv& env,
              const RunOptions& options);

// LibTorch intra-op threads for this rank: `requested`, or when 0 the node's
// cores divided among its ranks (at least 1).
int threads_per_rank(int requested, const MpiEnv& env);

// Work measure used to balance run queues across groups: samples to train.
std::vector<double> run_costs(const Study& study);

}  // namespace bs
