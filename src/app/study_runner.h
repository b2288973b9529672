#pragma once
// `batchscope run`: every rank trains the runs its group takes from the shared
// run queue (app/run_queue.h); group leaders write run files and report to
// world rank 0, which hands out the runs, prints and summarizes.
#include <string>
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
  // The shell command that continues this job (resume_command), printed by
  // rank 0 when the job stops early.
  std::string resume_hint;
};

// What `batchscope run` was given, for resume_command.
struct RunCommand {
  std::string binary;  // argv[0], as typed
  std::string study;   // the study file, as typed
  std::vector<std::string> sets;
  int threads = 0;  // --threads; 0 (the default) is left out
};

// The command, ready to paste into a shell, that continues this job: `cd`
// into this process's folder, the launcher, the binary, `run`, the study,
// every --set and --threads, then --resume (--overwrite left out), each word
// shell-quoted. The launcher is the mpirun (mpiexec, orterun, prterun) that
// started this process with all its options, when it is this process's
// parent; else `srun [--mpi=T] -n N` when Slurm started every rank as a task
// of its step (SLURM_STEP_NUM_TASKS is the world size); else `mpirun -np N`
// under Open MPI (OMPI_COMM_WORLD_SIZE) or a world of several ranks; else
// none (one rank started without a launcher).
std::string resume_command(const RunCommand& command, int world_size);

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
