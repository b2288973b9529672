#include "app/group_queue.h"

#include <chrono>
#include <utility>

#include "app/run_summary.h"
#include "trace/checkpoint.h"
#include "util/signals.h"

namespace bs {

GroupQueue::GroupQueue(const Study& study, const std::vector<RunAction>& actions, ReplicaGroup& group, int index,
                       GroupPlacement placement, RootConsole& console, RunQueue& queue)
    : st_(study),
      actions_(actions),
      group_(group),
      index_(index),
      placement_(std::move(placement)),
      console_(console),
      queue_(queue) {}

bool GroupQueue::run() {
  for (int ri = queue_.first_run(index_); ri >= 0; ri = queue_.next(index_, *group_.mpi, last_)) {
    if (group_wants_stop() || train_timed(ri)) {
      if (group_.leader()) queue_.leave(index_);
      return true;
    }
    console_.pump();
  }
  return false;
}

bool GroupQueue::train_timed(int ri) {
  const auto t0 = std::chrono::steady_clock::now();
  const RunResult res = train(st_.runs[static_cast<size_t>(ri)], actions_[static_cast<size_t>(ri)]);
  last_ = {ri, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
  busy_s_ += last_.seconds;
  return res.status == RunStatus::Preempted;
}

GroupReport GroupQueue::report() const {
  GroupReport g;
  g.group = index_;
  g.ranks = group_.mpi->size();
  g.busy_s = busy_s_;
  const QueueWaits& w = queue_.waits();
  g.asked = w.asked;
  g.wait_total_s = w.total_s;
  g.wait_max_s = w.max_s;
  return g;
}

// A signal between runs: the group agrees before starting another one.
bool GroupQueue::group_wants_stop() {
  double stop = stop_signal() != 0 ? 1 : 0;
  group_.mpi->allreduce_sum(&stop, 1);
  return stop > 0;
}

RunResult GroupQueue::train(const RunSpec& r, RunAction action) {
  Checkpoint resume_from;
  // Every rank reads the checkpoint: all continue from the same state.
  if (action == RunAction::Resume) resume_from = read_checkpoint(checkpoint_path(st_.output, r.name));
  const TrainState* resume = action == RunAction::Resume ? &resume_from.state : nullptr;
  if (!group_.leader()) return group_.trainer.run(r, nullptr, resume);
  return train_and_record(r, resume);
}

RunResult GroupQueue::train_and_record(const RunSpec& r, const TrainState* resume) {
  const RunBudget rb = run_budget(st_, r);
  const std::string ck = checkpoint_path(st_.output, r.name);
  std::unique_ptr<RunFile> file = open_run_file(r, rb, resume);
  ProgressState ps;
  ps.run = r.name;
  ps.total_steps = rb.total_steps;
  if (!files_) files_ = file_fingerprint(st_);
  LeaderSink sink(*file, console_, ps, st_.log.progress_seconds, ck, fingerprint(st_, r, *files_));
  const auto buffers = group_.trainer.buffer_names();
  if (!buffers.empty() && r.ranks() > 1)
    console_.progress("[" + r.name + "] warning: the model keeps " + std::to_string(buffers.size()) +
                      " buffers (BatchNorm statistics, e.g. " + buffers[0] +
                      ") per rank; they are averaged over the run's ranks at every log interval, but the ranks "
                      "normalize with their own batch statistics, so this split is not exactly one rank's batch");
  RunResult res;
  try {
    res = group_.trainer.run(r, &sink, resume);
  } catch (...) {
    // The trainer threw, so no step count came back (0); the trace shows how
    // far the run got, and the status that it failed. Best effort: on a full
    // disk this flush fails too, and the first error is the one to report.
    try {
      file->set_status(RunStatus::Failed, 0);
      file->flush();
    } catch (const std::exception&) {
    }
    throw;
  }
  sink.emit();
  if (res.status == RunStatus::Completed) file->write_final_params(res.final_params);
  file->set_status(res.status, res.steps);
  file->flush();
  // A finished run needs no checkpoint; a preempted one keeps it.
  if (res.status != RunStatus::Preempted) remove_checkpoint(ck);
  console_.run_done(summary_row(st_, r, res));
  return res;
}

// A fresh run replaces any old run file and checkpoint; a resumed one keeps
// the old trace up to the checkpoint's step.
std::unique_ptr<RunFile> GroupQueue::open_run_file(const RunSpec& r, const RunBudget& rb, const TrainState* resume) {
  const RunFileHeader header = make_header(st_, r, rb, placement_, group_.comm.backend(), group_.trainer);
  const std::string path = run_path(st_, r);
  if (resume) {
    const TrainState& s = *resume;
    return RunFile::resume(path, header, st_.log.flush_seconds, s.step, s.eval_rows, s.target_step,
                           s.target_step >= 0 ? s.target_step * r.global_batch() : -1);
  }
  remove_checkpoint(checkpoint_path(st_.output, r.name));
  return std::make_unique<RunFile>(path, header, st_.log.flush_seconds);
}

}  // namespace bs
