// Console text: progress lines, summary rows, table and CSV.
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "app/console.h"

namespace bs {
namespace {

SummaryRow row(const std::string& run, int64_t batch, double lr, uint64_t seed, double val_acc, double train_acc) {
  SummaryRow r;
  r.run = run;
  r.global_batch = batch;
  r.ranks = 2;
  r.lr = lr;
  r.peak_lr = lr * 2;
  r.seed = seed;
  r.status = "completed";
  r.steps = 60000 / batch;
  r.final_val_acc = val_acc;
  r.best_val_acc = val_acc + 0.01;
  r.final_train_acc = train_acc;
  r.samples_per_s = 1000.0 * static_cast<double>(batch);
  r.wall_s = 125;
  return r;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream is(text);
  for (std::string l; std::getline(is, l);) out.push_back(l);
  return out;
}

TEST(SummaryRow, SerializeParseRoundTrip) {
  SummaryRow r;
  r.run = "b32 lr0.05 s1";  // spaces survive: fields are tab-separated
  r.global_batch = 32;
  r.ranks = 3;
  r.lr = 0.05;
  r.peak_lr = 0.0125;
  r.seed = 123456789012ULL;
  r.status = "diverged";
  r.steps = 1875;
  r.steps_to_target = 1200;
  r.final_val_acc = 0.8765;
  r.best_val_acc = 0.8812;
  r.final_train_acc = 0.9031;
  r.samples_per_s = 45678.5;
  r.wall_s = 61.25;
  const std::string line = r.serialize();
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(std::count(line.begin(), line.end(), '\t'), 13);
  SummaryRow p = SummaryRow::parse(line);
  EXPECT_EQ(p.run, r.run);
  EXPECT_EQ(p.steps_to_target, 1200);
  EXPECT_EQ(p.global_batch, r.global_batch);
  EXPECT_EQ(p.ranks, r.ranks);
  EXPECT_DOUBLE_EQ(p.lr, r.lr);
  EXPECT_DOUBLE_EQ(p.peak_lr, r.peak_lr);
  EXPECT_EQ(p.seed, r.seed);
  EXPECT_EQ(p.status, r.status);
  EXPECT_EQ(p.steps, r.steps);
  EXPECT_DOUBLE_EQ(p.final_val_acc, r.final_val_acc);
  EXPECT_DOUBLE_EQ(p.best_val_acc, r.best_val_acc);
  EXPECT_DOUBLE_EQ(p.final_train_acc, r.final_train_acc);
  EXPECT_DOUBLE_EQ(p.samples_per_s, r.samples_per_s);
  EXPECT_DOUBLE_EQ(p.wall_s, r.wall_s);
  // Serializing the parsed row gives the same line.
  EXPECT_EQ(p.serialize(), line);
}

TEST(SummaryRow, RoundTripKeepsTenSignificantDigits) {
  SummaryRow r = row("x", 64, 0.0707106781, 1, 0.123456789, 0.5);
  SummaryRow p = SummaryRow::parse(r.serialize());
  EXPECT_NEAR(p.lr, r.lr, 1e-10);
  EXPECT_NEAR(p.final_val_acc, r.final_val_acc, 1e-10);
}

TEST(SummaryTable, ContainsEveryRunSortedByBatch) {
  std::vector<SummaryRow> rows{row("run_b512", 512, 0.05, 1, 0.80, 0.82), row("run_b32", 32, 0.05, 1, 0.86, 0.95),
                               row("run_b128_s2", 128, 0.05, 2, 0.85, 0.90),
                               row("run_b128_s1", 128, 0.05, 1, 0.84, 0.90)};
  const std::string t = summary_table(rows);
  const auto lines = lines_of(t);
  ASSERT_EQ(lines.size(), rows.size() + 1);
  // Header.
  EXPECT_NE(lines[0].find("run"), std::string::npos);
  EXPECT_NE(lines[0].find("batch"), std::string::npos);
  EXPECT_NE(lines[0].find("val_acc"), std::string::npos);
  EXPECT_NE(lines[0].find("gap"), std::string::npos);
  // Every run, in batch order (then seed).
  const std::vector<std::string> order{"run_b32", "run_b128_s1", "run_b128_s2", "run_b512"};
  for (size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(lines[i + 1].rfind(order[i] + " ", 0), 0u) << lines[i + 1];
  }
  // Values: accuracy, the generalization gap (train - val) and the time.
  EXPECT_NE(lines[1].find("0.8600"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("+0.0900"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("2m05s"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("completed"), std::string::npos) << lines[1];
  // Columns are aligned: every line has the same width up to the time column.
  for (size_t i = 2; i < lines.size(); ++i) EXPECT_EQ(lines[i].size(), lines[1].size());
}

TEST(SummaryTable, EmptyHasHeaderOnly) {
  const auto lines = lines_of(summary_table({}));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("samples/s"), std::string::npos);
}

TEST(SummaryCsv, HeaderAndLines) {
  std::vector<SummaryRow> rows{row("a", 32, 0.05, 1, 0.86, 0.95), row("b", 64, 0.1, 2, 0.85, 0.9)};
  rows[1].final_val_acc = std::numeric_limits<double>::quiet_NaN();  // an mse run: no accuracy
  rows[1].steps_to_target = 400;
  const auto lines = lines_of(summary_csv("s", rows));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0],
            "run,study,global_batch,ranks,base_lr,peak_lr,seed,status,steps,steps_to_target,final_val_acc,best_val_"
            "acc,final_train_acc,samples_per_s,wall_s");
  // Missing values (no target reached, no accuracy) are empty fields.
  EXPECT_EQ(lines[1], "a,s,32,2,0.05,0.1,1,completed,1875,,0.86,0.87,0.95,32000,125");
  EXPECT_EQ(lines[2].rfind("b,s,64,2,0.1,0.2,2,completed,937,400,,", 0), 0u) << lines[2];
  for (const auto& l : lines) EXPECT_EQ(std::count(l.begin(), l.end(), ','), 14) << l;
}

TEST(ProgressLine, ContainsRunStepTotalAndEta) {
  ProgressState p;
  p.run = "b32_lr0.05_s1";
  p.step = 150;
  p.total_steps = 1875;
  p.epoch = 0;
  p.loss = 0.51234;
  p.samples_per_s = 1234;
  p.eta_s = 125;
  std::string line = progress_line(p);
  EXPECT_NE(line.find("[b32_lr0.05_s1]"), std::string::npos) << line;
  EXPECT_NE(line.find("step 150/1875"), std::string::npos) << line;
  EXPECT_NE(line.find("epoch 0"), std::string::npos) << line;
  EXPECT_NE(line.find("loss 0.5123"), std::string::npos) << line;
  EXPECT_NE(line.find("1234 samples/s"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 2m05s"), std::string::npos) << line;
  EXPECT_NE(line.find("val_acc    -"), std::string::npos) << line;  // no eval yet

  p.val_acc = 0.85125;
  p.eta_s = 7200;
  line = progress_line(p);
  EXPECT_NE(line.find("val_acc 0.851"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 2.0h"), std::string::npos) << line;
}

TEST(FormatDuration, Ranges) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(59.4), "59s");
  EXPECT_EQ(format_duration(89), "89s");
  EXPECT_EQ(format_duration(90), "1m30s");
  EXPECT_EQ(format_duration(125), "2m05s");
  EXPECT_EQ(format_duration(3600), "60m00s");
  EXPECT_EQ(format_duration(5399), "89m59s");
  EXPECT_EQ(format_duration(5400), "1.5h");
  EXPECT_EQ(format_duration(7200), "2.0h");
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(format_duration(std::numeric_limits<double>::quiet_NaN()), "?");
}

TEST(DescribeLayout, ListsGroupsRunsAndIdleRanks) {
  Study st = parse_study(
      "study: d\ndata: {name: synthetic}\nbudget: {steps: 10}\n"
      "runs: [{name: a, batch: [16, 48]}, {name: b, batch: [32, 32]}]\n",
      "study.yaml");
  Layout L = plan_layout(st.runs, {}, 5);
  std::string text = describe_layout(st, L);
  EXPECT_NE(text.find("2 runs on 5 ranks in 2 replica groups"), std::string::npos) << text;
  EXPECT_NE(text.find("run a: global batch 64"), std::string::npos) << text;
  EXPECT_NE(text.find("run b: global batch 64"), std::string::npos) << text;
  EXPECT_NE(text.find("world rank 1: batch 48"), std::string::npos) << text;
  EXPECT_NE(text.find("idle ranks"), std::string::npos) << text;
  EXPECT_NE(text.find(" 4"), std::string::npos) << text;
  EXPECT_NE(text.find("shared queue"), std::string::npos) << text;
}

TEST(DescribeGpuSharing, NamesEachGpusGroupsAndFirstRuns) {
  Study st = parse_study(
      "study: d\ndata: {name: synthetic}\nbudget: {steps: 10}\n"
      "runs: [{name: a, batch: [16]}, {name: b, batch: [32]}, {name: c, batch: [64]}]\n",
      "study.yaml");
  Layout L = plan_layout(st.runs, {}, 3);
  EXPECT_EQ(describe_gpu_sharing(st, L, {}), "");
  std::string text = describe_gpu_sharing(st, L, gpu_sharing(L, planned_rank_gpus(3, 3, 2)));
  EXPECT_NE(text.find("3 replica groups on 2 GPUs"), std::string::npos) << text;
  EXPECT_NE(text.find("host 0 cuda:0: groups 0, 2 (first runs: "), std::string::npos) << text;
  EXPECT_NE(text.find("host 0 cuda:1: group 1 (first runs: "), std::string::npos) << text;
}

TEST(NearestName, TyposFindTheirCommandFarWordsFindNone) {
  const std::vector<std::string> names{"check", "plan", "run", "version", "bench"};
  EXPECT_EQ(nearest_name("chek", names), "check");
  EXPECT_EQ(nearest_name("rnu", names), "run");  // a swap is one edit
  EXPECT_EQ(nearest_name("verison", names), "version");
  EXPECT_EQ(nearest_name("benhc", names), "bench");
  EXPECT_EQ(nearest_name("frobnicate", names), "");
  EXPECT_EQ(nearest_name("x", names), "");
  EXPECT_EQ(nearest_name("", names), "");
}

TEST(StudyProgressLine, CountsAndEta) {
  StudyCounts c;
  c.total = 16;
  c.done = 5;
  c.running = 2;
  c.samples_trained = 1000;
  c.samples_left = 7200;
  c.elapsed_s = 10;  // 100 samples/s: 72 s left
  EXPECT_EQ(study_progress_line(c), "study: 5/16 runs done, 2 running, 9 queued; ETA 72s");
  c.samples_trained = 0;
  EXPECT_EQ(study_progress_line(c), "study: 5/16 runs done, 2 running, 9 queued; ETA ? (no run finished yet)");
  c.done = 16;
  c.running = 0;
  EXPECT_EQ(study_progress_line(c), "study: 16/16 runs done, 0 running, 0 queued");
}

TEST(GroupReport, SerializeParseRoundTrip) {
  GroupReport g;
  g.group = 3;
  g.ranks = 2;
  g.busy_s = 123.456789;
  g.asked = 7;
  g.wait_total_s = 0.0123;
  g.wait_max_s = 0.004;
  const GroupReport h = GroupReport::parse(g.serialize());
  EXPECT_EQ(h.group, 3);
  EXPECT_EQ(h.ranks, 2);
  EXPECT_DOUBLE_EQ(h.busy_s, 123.456789);
  EXPECT_EQ(h.asked, 7);
  EXPECT_DOUBLE_EQ(h.wait_total_s, 0.0123);
  EXPECT_DOUBLE_EQ(h.wait_max_s, 0.004);
}

TEST(GroupReport, IdleIsTheRankTimeOutsideRuns) {
  // A 2-rank group busy 90 s and a 1-rank group busy 60 s over 100 s:
  // rank-time 300 rank-s, inside runs 240, idle 20%.
  GroupReport a, b;
  a.ranks = 2;
  a.busy_s = 90;
  b.group = 1;
  b.ranks = 1;
  b.busy_s = 60;
  b.asked = 4;
  b.wait_total_s = 0.02;
  b.wait_max_s = 0.008;
  EXPECT_DOUBLE_EQ(idle_fraction({a, b}, 100), 0.2);
  EXPECT_DOUBLE_EQ(idle_fraction({}, 100), 0);
  EXPECT_DOUBLE_EQ(idle_fraction({a}, 0), 0);
  const auto lines = lines_of(utilization_lines({a, b}, 100));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].rfind("group idle: 20.0% of the study's rank-time (wall 100.0 s x 3 ranks", 0), 0u) << lines[0];
  EXPECT_EQ(lines[1], "run queue: 4 requests answered in 5.0 ms on average, 8.0 ms at most");
  EXPECT_EQ(lines_of(utilization_lines({a}, 100)).size(), 1u);  // no requests: no queue line
}

}  // namespace
}  // namespace bs
