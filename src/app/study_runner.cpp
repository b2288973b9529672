#include "app/study_runner.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

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

// The shared queue's plan: runs to resume first, then fresh ones; finished
// runs are never handed out.
QueuePlan queue_plan(const Study& st, const std::vector<RunAction>& actions) {
  QueuePlan p;
  std::vector<Handout> how;
  for (RunAction a : actions) {
    how.push_back(a == RunAction::Done ? Handout::Never : a == RunAction::Resume ? Handout::First : Handout::InTurn);
    p.resume.push_back(a == RunAction::Resume);
  }
  p.cost = run_costs(st);
  p.order = queue_order(p.cost, how, st.runs.size());
  return p;
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

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// One word for a POSIX shell: as it is when no character in it is special to
// a shell, else in single quotes (a quote inside becomes '\'').
std::string shell_word(const std::string& w) {
  static const std::string plain = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-./=:,+@%";
  if (!w.empty() && w.find_first_not_of(plain) == std::string::npos) return w;
  std::string out = "'";
  for (char c : w) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The words of this process's parent's command line before `binary`, when
// the parent is an MPI launcher (mpirun starts the ranks on its own node
// itself), e.g. {"mpirun", "-np", "2", "--oversubscribe"}; else none.
std::vector<std::string> parent_launcher(const std::string& binary) {
  static const std::set<std::string> launchers = {"mpirun",  "mpiexec",        "orterun",
                                                  "prterun", "mpirun.openmpi", "mpiexec.openmpi"};
  std::ifstream in("/proc/" + std::to_string(getppid()) + "/cmdline", std::ios::binary);
  std::vector<std::string> words;
  for (std::string w; std::getline(in, w, '\0');) words.push_back(w);
  if (words.empty() || launchers.count(std::filesystem::path(words[0]).filename().string()) == 0) return {};
  const auto program = std::find(words.begin() + 1, words.end(), binary);
  if (program == words.end()) return {};
  return {words.begin(), program};
}

// The launcher words of resume_command (study_runner.h says which).
std::vector<std::string> launcher(const std::string& binary, int world_size) {
  std::vector<std::string> parent = parent_launcher(binary);
  if (!parent.empty()) return parent;
  const std::string n = std::to_string(world_size);
  if (env_or_empty("SLURM_STEP_NUM_TASKS") == n) {
    std::vector<std::string> srun = {"srun"};
    const std::string mpi = env_or_empty("SLURM_MPI_TYPE");
    if (!mpi.empty()) srun.push_back("--mpi=" + mpi);
    srun.insert(srun.end(), {"-n", n});
    return srun;
  }
  if (world_size > 1 || !env_or_empty("OMPI_COMM_WORLD_SIZE").empty()) return {"mpirun", "-np", n};
  return {};
}

}  // namespace

std::string resume_command(const RunCommand& c, int world_size) {
  std::vector<std::string> words = launcher(c.binary, world_size);
  words.insert(words.end(), {c.binary, "run", c.study});
  for (const std::string& set : c.sets) words.insert(words.end(), {"--set", set});
  if (c.threads != 0) words.insert(words.end(), {"--threads", std::to_string(c.threads)});
  words.emplace_back("--resume");
  std::error_code ec;
  const std::filesystem::path here = std::filesystem::current_path(ec);
  std::string out = ec ? "" : "cd " + shell_word(here.string()) + " && ";
  for (size_t i = 0; i < words.size(); ++i) out += (i ? " " : "") + shell_word(words[i]);
  return out;
}

int run_study(const Study& st, const Layout& layout, const DevicePlan& devices, const std::vector<RunAction>& actions,
              const MpiEnv& env, const RunOptions& opt, DataSplits data) {
  // The study's wall time, on rank 0: from here (every rank has just agreed
  // the run actions) to the last group's report.
  const auto t0 = std::chrono::steady_clock::now();
  const bool root = env.rank() == 0;
  const int threads = threads_per_rank(opt.threads, env);
  set_torch_threads(threads);
  if (root) {
    std::vector<std::string> rank_gpu;
    for (const auto& label : devices.label) rank_gpu.push_back(label.rfind("cuda", 0) == 0 ? label : "");
    std::cout << describe_layout(st, layout) << "intra-op threads per rank: " << threads << "; " << devices.summary
              << "\n"
              << describe_gpu_sharing(st, layout, gpu_sharing(layout, rank_gpu)) << std::flush;
  }
  RunQueue queue(layout, st.runs, queue_plan(st, actions), env.rank());
  RootConsole console(root, &queue);
  if (root) {
    report_done_runs(st, actions, console);
    StudyWatch w;
    w.total = static_cast<int>(st.runs.size());
    w.every_s = st.log.progress_seconds;
    for (const auto& r : st.runs)
      w.planned[r.name] = static_cast<double>(run_budget(st, r).total_steps * r.global_batch());
    console.watch_study(std::move(w));
  }
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
  if (preempted && root) {
    const std::string hint = opt.resume_hint.empty() ? "batchscope run " + st.file + " --resume" : opt.resume_hint;
    std::cout << "preempted: checkpoints written; continue with: " << hint << std::endl;
  }
  return preempted ? kExitPreempted : 0;
}

}  // namespace bs
