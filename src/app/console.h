#pragma once
// Console text: progress lines and the end-of-study summary. Formatting only;
// where the text travels (rank 0 prints everything) is the runner's business.
#include <cstdint>
#include <string>
#include <vector>

#include "config/study.h"
#include "placement/device_plan.h"
#include "placement/layout.h"
#include "train/records.h"

namespace bs {

struct ProgressState {
  std::string run;
  int64_t step = 0, total_steps = 0;
  int32_t epoch = 0;
  double loss = 0;
  double val_acc = -1;  // < 0: no eval yet
  double samples_per_s = 0;
  double eta_s = 0;
};
std::string progress_line(const ProgressState& p);

struct SummaryRow {
  std::string run;
  int64_t global_batch = 0;
  int ranks = 0;
  double lr = 0, peak_lr = 0;
  uint64_t seed = 0;
  std::string status;
  int64_t steps = 0;
  int64_t steps_to_target = -1;  // -1: no target, or not reached
  double final_val_acc = 0, best_val_acc = 0, final_train_acc = 0;
  double samples_per_s = 0, wall_s = 0;

  std::string serialize() const;  // one tab-separated line
  static SummaryRow parse(const std::string& line);
};
std::string summary_table(const std::vector<SummaryRow>& rows);

// What a group leader reports to world rank 0 when its group has no more
// runs: its time inside runs and its waits for the run queue (app/run_queue).
struct GroupReport {
  int group = 0, ranks = 0;
  double busy_s = 0;  // wall time inside runs: from reading a checkpoint or opening the run file to the final status
  int asked = 0;      // requests to the run queue answered by rank 0 (rank 0's own take no message)
  double wait_total_s = 0, wait_max_s = 0;

  std::string serialize() const;  // one tab-separated line
  static GroupReport parse(const std::string& line);
};
// The share of the study's rank-time the groups spent outside runs:
// 1 - sum(ranks * busy_s) / (wall_s * sum(ranks)) over the groups (docs/architecture.md).
double idle_fraction(const std::vector<GroupReport>& groups, double wall_s);
// The summary's lines on it: "group idle: X% of the study's rank-time (...)",
// then the run queue's answer times.
std::string utilization_lines(const std::vector<GroupReport>& groups, double wall_s);
// summary.csv: the column names of `batchscope-analysis summary --csv`; a
// missing value (no target reached, no accuracy) is an empty field.
std::string summary_csv(const std::string& study, const std::vector<SummaryRow>& rows);

// What `batchscope plan` prints: groups, their runs (the first exact, the
// rest the queue's estimate) and per-rank batches.
std::string describe_layout(const Study& study, const Layout& layout);
// The name in `names` closest to `word` by edit distance, "" when none is
// near enough to be a typo of it (more than a third of its letters off).
std::string nearest_name(const std::string& word, const std::vector<std::string>& names);
// Which replica groups share each GPU (placement/device_plan gpu_sharing), with
// each group's first run; "" when there is no GPU.
std::string describe_gpu_sharing(const Study& study, const Layout& layout, const std::vector<GpuShare>& shares);

std::string format_duration(double seconds);

// The study line rank 0 prints at the progress rate: runs done, running and
// queued, and an ETA from the samples per second of the runs finished in this
// session (none before the first finishes; running runs' partial progress is
// not counted, so it errs long).
struct StudyCounts {
  int total = 0, done = 0, running = 0;
  double samples_trained = 0;  // by the runs finished in this session
  double samples_left = 0;     // planned, of the runs not finished
  double elapsed_s = 0;
};
std::string study_progress_line(const StudyCounts& c);

}  // namespace bs
