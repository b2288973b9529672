#pragma once
// `batchscope run`: every rank trains the runs its group takes from the shared
// run queue (app/run_queue.h); group leaders write run files and report to
// world rank 0, which hands out the runs, prints and summarizes.
#include <vector>

#include "app/run_actions.h"
#include "comm/mpi_env.h"
#include "config/study.h"
#include "data/dataset.h"
#include "placement/device_plan.h"
#include "placement/layout.h"

namespace bs {

// Exit code of a job stopped by SIGTERM/SIGUSR1 after checkpointing (EX_TEMPFAIL):
// the scheduler should requeue it and the next job continue with --resume.
inline constexpr int kExitPreempted = 75;

struct RunOptions {
  bool overwrite = false;
  bool resume = false;
  int threads = 0;  // 0: cores on this node / ranks on this node
};

// Collective over the world. `actions`: agree_run_actions (app/run_actions.h),
// one per run; `data`: the study's data (moved into this rank's group).
// Returns the process exit code (0, or kExitPreempted), the same on every
// rank; throws on errors that end the job.
int run_study(const Study& study, const Layout& layout, const DevicePlan& devices,
              const std::vector<RunAction>& actions, const MpiEnv& env, const RunOptions& options, DataSplits data);

// Planned work of each run, samples to train: the run queue hands out the
// largest first (and `plan` estimates the groups' shares with it).
std::vector<double> run_costs(const Study& study);

}  // namespace bs
