#include "app/root_console.h"

#include <chrono>
#include <iostream>
#include <thread>

namespace bs {

void RootConsole::progress(const std::string& line) {
  if (root_) {
    std::cout << line << std::endl;
    pump();
  } else {
    channel_.send(TextChannel::kProgress, line);
  }
}

void RootConsole::run_done(const SummaryRow& row) {
  if (root_)
    rows_.push_back(row);
  else
    channel_.send(TextChannel::kRunDone, row.serialize());
}

void RootConsole::group_done(const GroupReport& report) {
  if (root_)
    reports_.push_back(report);
  else
    channel_.send(TextChannel::kGroupDone, report.serialize());
}

bool RootConsole::pump() {
  if (!root_) return false;
  const auto text = channel_.poll();
  for (auto& m : text) take(m);
  maybe_print_study();
  const bool asked = queue_ && queue_->serve();
  return asked || !text.empty();
}

void RootConsole::watch_study(StudyWatch w) {
  if (!root_ || w.total <= 1) return;  // one run: its own line says it all
  watch_ = std::move(w);
  done_before_ = rows_.size();
  watch_start_ = last_study_line_ = std::chrono::steady_clock::now();
}

StudyCounts RootConsole::study_counts() const {
  StudyCounts c;
  c.total = watch_->total;
  c.done = static_cast<int>(rows_.size());
  const int finished_here = static_cast<int>(rows_.size() - done_before_);
  c.running = queue_ ? std::max(0, queue_->handed_out() - finished_here) : 0;
  c.samples_left = 0;
  for (const auto& [name, samples] : watch_->planned) c.samples_left += samples;
  for (size_t i = 0; i < rows_.size(); ++i) {
    const auto it = watch_->planned.find(rows_[i].run);
    if (it != watch_->planned.end()) c.samples_left -= it->second;
    if (i >= done_before_) c.samples_trained += static_cast<double>(rows_[i].steps * rows_[i].global_batch);
  }
  c.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - watch_start_).count();
  return c;
}

void RootConsole::maybe_print_study() {
  if (!watch_) return;
  const auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_study_line_).count() < watch_->every_s) return;
  last_study_line_ = now;
  std::cout << study_progress_line(study_counts()) << std::endl;
}

const std::vector<SummaryRow>& RootConsole::wait_for_groups(size_t groups) {
  // Polls with a short sleep when nothing came: a blocking MPI wait would
  // busy-poll a core that groups on this node train with; the sleep bounds
  // the queue's answer time here (about 1 ms).
  while (reports_.size() < groups)
    if (!pump()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return rows_;
}

void RootConsole::take(const std::pair<int, std::string>& m) {
  if (m.first == TextChannel::kProgress)
    std::cout << m.second << std::endl;
  else if (m.first == TextChannel::kRunDone)
    rows_.push_back(SummaryRow::parse(m.second));
  else if (m.first == TextChannel::kGroupDone)
    reports_.push_back(GroupReport::parse(m.second));
}

LeaderSink::LeaderSink(RunFile& file, RootConsole& console, ProgressState state, double progress_s,
                       std::string checkpoint, Fingerprint fingerprint, StepHold hold)
    : file_(file),
      console_(console),
      state_(std::move(state)),
      every_(progress_s),
      last_(Clock::now()),
      checkpoint_(std::move(checkpoint)),
      fingerprint_(std::move(fingerprint)),
      hold_(hold) {}

void LeaderSink::on_steps(const std::vector<StepRecord>& rows) {
  file_.append(rows);
  file_.maybe_flush();
  const auto& r = rows.back();
  state_.step = r.step;
  state_.epoch = r.epoch;
  state_.loss = r.loss;
  state_.samples_per_s = r.wall_s > 0 ? static_cast<double>(r.samples) / r.wall_s : 0;
  state_.eta_s =
      r.step > 0 ? r.wall_s / static_cast<double>(r.step) * static_cast<double>(state_.total_steps - r.step) : 0;
  if (std::chrono::duration<double>(Clock::now() - last_).count() >= every_) emit();
  // Rank 0 trains too: between its own steps it prints what other groups sent.
  console_.pump();
  if (hold_.due(rows.front().step, r.step)) hold();
}

// The rows so far on disk, the line tests wait for, then no step until a stop
// signal: the group's other ranks wait in the next reduction, which carries
// this rank's stop flag, and the run checkpoints at the next drain. Rank 0
// keeps printing what other groups send meanwhile.
void LeaderSink::hold() {
  file_.flush();
  console_.progress(hold_.message(state_.run));
  StepHold::wait_for_stop_signal([this] { console_.pump(); });
}

void LeaderSink::on_eval(const EvalRecord& e) {
  file_.append(e);
  state_.val_acc = e.val_acc;
  console_.pump();  // an evaluation may take longer than the steps between drains
}

void LeaderSink::on_checkpoint(const TrainState& s) {
  // The run file first: a checkpoint must never be ahead of the trace.
  file_.flush();
  write_checkpoint(checkpoint_, {fingerprint_, s});
}

void LeaderSink::emit() {
  last_ = Clock::now();
  console_.progress(progress_line(state_));
}

}  // namespace bs
