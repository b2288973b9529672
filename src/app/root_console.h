#pragma once
// The study's console belongs to world rank 0: it prints its own lines and
// what other group leaders send, as they arrive, and keeps the run summaries
// and the groups' reports for the summary. Other leaders send their text to
// it through a TextChannel. Rank 0's pump is also where it answers the run
// queue (app/run_queue.h): at its drains, between its runs, at the end.
#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "app/console.h"
#include "app/run_queue.h"
#include "comm/text_channel.h"
#include "trace/checkpoint.h"
#include "trace/run_file.h"
#include "train/trainer.h"
#include "util/step_hold.h"

namespace bs {

// What rank 0 needs for the study line (console.h study_progress_line).
struct StudyWatch {
  int total = 0;                          // runs in the study
  std::map<std::string, double> planned;  // samples to train, per run name
  double every_s = 5;                     // log.progress_seconds
};

class RootConsole {
 public:
  // `queue`: answered by rank 0's pump; may be null.
  explicit RootConsole(bool root, RunQueue* queue = nullptr) : root_(root), queue_(queue) {}

  void progress(const std::string& line);  // printed on rank 0, sent from others
  void run_done(const SummaryRow& row);    // kept on rank 0, sent from others
  // A group leader's last word: its group takes no more runs.
  void group_done(const GroupReport& report);
  // Rank 0: prints what has arrived and answers the run queue; elsewhere
  // nothing. Returns whether anything arrived.
  bool pump();
  // Rank 0: waits for `groups` groups' reports (its own included), not for a
  // count of runs: after a preemption, queued runs never start and never
  // report. Meanwhile it answers the run queue.
  const std::vector<SummaryRow>& wait_for_groups(size_t groups);
  const std::vector<GroupReport>& reports() const { return reports_; }
  // Rank 0, after the runs already done were reported: from now on pump()
  // prints the study line every `w.every_s` seconds.
  void watch_study(StudyWatch w);
  // Completes this rank's pending sends (before MPI_Finalize).
  void drain() { channel_.drain(); }

 private:
  void take(const std::pair<int, std::string>& message);
  void maybe_print_study();
  StudyCounts study_counts() const;
  bool root_;
  RunQueue* queue_;
  TextChannel channel_;
  std::vector<SummaryRow> rows_;
  std::vector<GroupReport> reports_;
  std::optional<StudyWatch> watch_;
  size_t done_before_ = 0;  // rows_ already done when the study started
  std::chrono::steady_clock::time_point watch_start_, last_study_line_;
};

// A group leader's sink: writes the run file and checkpoints, and sends
// progress lines to the console at a steady rate.
class LeaderSink final : public RecordSink {
 public:
  // `hold`: the testing aid BATCHSCOPE_HOLD_AT_STEP (util/step_hold.h), read
  // once per run.
  LeaderSink(RunFile& file, RootConsole& console, ProgressState state, double progress_s, std::string checkpoint,
             Fingerprint fingerprint, StepHold hold = StepHold::from_env());
  void on_steps(const std::vector<StepRecord>& rows) override;
  void on_eval(const EvalRecord& e) override;
  void on_target(int64_t step, int64_t samples) override { file_.set_target_reached(step, samples); }
  void on_checkpoint(const TrainState& s) override;
  void emit();  // a progress line now

 private:
  void hold();
  using Clock = std::chrono::steady_clock;
  RunFile& file_;
  RootConsole& console_;
  ProgressState state_;
  double every_;
  Clock::time_point last_;
  std::string checkpoint_;
  Fingerprint fingerprint_;
  StepHold hold_;
};

}  // namespace bs
