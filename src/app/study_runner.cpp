#include "app/study_runner.h"

#include <iostream>

#include "app/console.h"
#include "app/group_queue.h"
#include "app/replica_group.h"
#include "app/root_console.h"
#include "app/run_header.h"
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

// This rank's share of the study: its group's queue, when it is in a group.
// Returns true when the queue stopped early. The group (trainer, device
// communicator) is released on return, before rank 0 waits on the others.
bool train_own_queue(const Study& st, const Layout& layout, const DevicePlan& devices,
                     const std::vector<RunAction>& actions, const MpiEnv& env, RootConsole& console, DataSplits data) {
  const int g = layout.group_of(env.rank());
  std::unique_ptr<ReplicaGroup> group = make_group(st, devices, env, g, std::move(data));
  if (!group) return false;
  const GroupPlan& plan = layout.groups[static_cast<size_t>(g)];
  GroupQueue queue(st, actions, *group, group_placement(plan, devices, env, *group->mpi), console);
  const bool stopped_early = queue.run(plan.runs);
  if (group->leader()) console.group_done(g);
  return stopped_early;
}

}  // namespace

int run_study(const Study& st, const Layout& layout, const DevicePlan& devices, const std::vector<RunAction>& actions,
              const MpiEnv& env, const RunOptions& opt, DataSplits data) {
  const bool root = env.rank() == 0;
  const int threads = threads_per_rank(opt.threads, env);
  set_torch_threads(threads);
  if (root) {
    std::cout << describe_layout(st, layout) << "intra-op threads per rank: " << threads << "; " << devices.summary
              << std::endl;
  }
  RootConsole console(root);
  const bool stopped_early = train_own_queue(st, layout, devices, actions, env, console, std::move(data));
  if (root) {
    const bool in_group = layout.group_of(env.rank()) >= 0;
    print_summary(st, console.wait_for_groups(layout.groups.size() - (in_group ? 1 : 0)));
  }
  console.drain();
  // Every rank returns the same code, so mpirun and the scheduler see one answer.
  const bool preempted = env.allreduce_max(stopped_early ? 1 : 0) != 0;
  if (preempted && root)
    std::cout << "preempted: checkpoints written; continue with: batchscope run " << st.file << " --resume"
              << std::endl;
  return preempted ? kExitPreempted : 0;
}

}  // namespace bs
