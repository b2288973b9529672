#include "app/study_runner.h"

#include <chrono>
#include <iostream>

#include "app/console.h"
#include "app/group_queue.h"
#include "app/replica_group.h"
#include "app/root_console.h"
#include "app/run_header.h"
#include "app/run_queue.h"
#include "app/run_summary.h"
#include "train/torch_env.h"

namespace bs {

std::vector<double> run_costs(const Study& st) {
  std::vector<double> c;
  for (const auto& r : st.runs)
    c.push_back(static_cast<double>(run_budget(st, r).total_steps) * static_cast<double>(r.global_batch()));
  return c;
}

namespace {

// The shared queue's order: runs to resume first, then fresh ones; finished
// runs are never handed out.
std::vector<int> run_order(const Study& st, const std::vector<RunAction>& actions) {
  std::vector<Handout> how;
  for (RunAction a : actions)
    how.push_back(a == RunAction::Done ? Handout::Never : a == RunAction::Resume ? Handout::First : Handout::InTurn);
  return queue_order(run_costs(st), how, st.runs.size());
}

// Rank 0: the summary rows of runs finished in an earlier job, from their files.
void report_done_runs(const Study& st, const std::vector<RunAction>& actions, RootConsole& console) {
  for (size_t i = 0; i < st.runs.size(); ++i)
    if (actions[i] == RunAction::Done) console.run_done(summary_from_file(st, st.runs[i], run_path(st, st.runs[i])));
}

// This rank's share of the study: its group's runs, when it is in a group.
// Returns true when the group stopped early. The group (trainer, device
// communicator) is released on return, before rank 0 waits on the others.
bool train_own_runs(const Study& st, const Layout& layout, const DevicePlan& devices,
                    const std::vector<RunAction>& actions, const MpiEnv& env, RootConsole& console, RunQueue& queue,
                    DataSplits data) {
  const int g = layout.group_of(env.rank());
  std::unique_ptr<ReplicaGroup> group = make_group(st, devices, env, g, std::move(data));
  if (!group) return false;
  const GroupPlan& plan = layout.groups[static_cast<size_t>(g)];
  GroupQueue runs(st, actions, *group, g, group_placement(plan, devices, env, *group->mpi), console, queue);
  const bool stopped_early = runs.run();
  if (group->leader()) console.group_done(runs.report());
  return stopped_early;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int run_study(const Study& st, const Layout& layout, const DevicePlan& devices, const std::vector<RunAction>& actions,
              const MpiEnv& env, const RunOptions& opt, DataSplits data) {
  // The study's wall time, on rank 0: from here (every rank has just agreed
  // the run actions) to the last group's report.
  const auto t0 = std::chrono::steady_clock::now();
  const bool root = env.rank() == 0;
  const int threads = threads_per_rank(opt.threads, env);
  set_torch_threads(threads);
  if (root) {
    std::cout << describe_layout(st, layout) << "intra-op threads per rank: " << threads << "; " << devices.summary
              << std::endl;
  }
  RunQueue queue(layout, st.runs, run_order(st, actions), env.rank());
  RootConsole console(root, &queue);
  if (root) report_done_runs(st, actions, console);
  const bool stopped_early = train_own_runs(st, layout, devices, actions, env, console, queue, std::move(data));
  if (root) {
    const auto& rows = console.wait_for_groups(layout.groups.size());
    print_summary(st, rows, console.reports(), seconds_since(t0));
  }
  console.drain();
  // Every rank returns the same code, so mpirun and the scheduler see one
  // answer; runs the queue withheld after a stop signal leave the study
  // unfinished too.
  const bool preempted = env.allreduce_max(stopped_early || queue.withheld() ? 1 : 0) != 0;
  if (preempted && root)
    std::cout << "preempted: checkpoints written; continue with: batchscope run " << st.file << " --resume"
              << std::endl;
  return preempted ? kExitPreempted : 0;
}

}  // namespace bs
