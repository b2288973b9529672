#pragma once
// The study's console belongs to world rank 0: it prints its own lines and
// what other group leaders send, as they arrive, and keeps the run summaries
// for the table. Other leaders send their text to it through a TextChannel.
#include <chrono>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "app/console.h"
#include "comm/text_channel.h"
#include "trace/checkpoint.h"
#include "trace/run_file.h"
#include "train/trainer.h"

namespace bs {

class RootConsole {
 public:
  explicit RootConsole(bool root) : root_(root) {}

  void progress(const std::string& line);  // printed on rank 0, sent from others
  void run_done(const SummaryRow& row);    // kept on rank 0, sent from others
  // A leader other than rank 0 has nothing more to report.
  void group_done(int group);
  // Rank 0: prints what has arrived; elsewhere nothing.
  void pump();
  // Rank 0: waits for `other_groups` groups' "done", not for a count of runs:
  // after a preemption, queued runs never start and never report.
  const std::vector<SummaryRow>& wait_for_groups(size_t other_groups);
  // Completes this rank's pending sends (before MPI_Finalize).
  void drain() { channel_.drain(); }

 private:
  void take(const std::pair<int, std::string>& message);
  bool root_;
  TextChannel channel_;
  std::vector<SummaryRow> rows_;
  size_t groups_done_ = 0;
};

// A group leader's sink: writes the run file and checkpoints, and sends
// progress lines to the console at a steady rate.
class LeaderSink final : public RecordSink {
 public:
  LeaderSink(RunFile& file, RootConsole& console, ProgressState state, double progress_s, std::string checkpoint,
             Fingerprint fingerprint);
  void on_steps(const std::vector<StepRecord>& rows) override;
  void on_eval(const EvalRecord& e) override;
  void on_target(int64_t step, int64_t samples) override { file_.set_target_reached(step, samples); }
  void on_checkpoint(const TrainState& s) override;
  void emit();  // a progress line now

 private:
  using Clock = std::chrono::steady_clock;
  RunFile& file_;
  RootConsole& console_;
  ProgressState state_;
  double every_;
  Clock::time_point last_;
  std::string checkpoint_;
  Fingerprint fingerprint_;
};

}  // namespace bs
