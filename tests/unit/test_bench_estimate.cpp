// check --bench: bench JSON lines to step times, interpolated by batch, and
// the study's training time from them.
#include <cmath>

#include <gtest/gtest.h>

#include "app/bench_estimate.h"
#include "config/study.h"
#include "util/errors.h"

namespace bs {
namespace {

const char* kLines =
    "# 8 cases, 1 rank(s)\n"
    "{\"impl\": \"batchscope\", \"model\": \"mlp\", \"world\": 1, \"batch_per_rank\": 32, \"step_ms\": 1.0, "
    "\"final_loss\": 2.1}\n"
    "{\"impl\": \"torch-ddp\", \"model\": \"mlp\", \"batch_per_rank\": 32, \"step_ms\": 9.0}\n"
    "{\"impl\": \"batchscope\", \"model\": \"mlp\", \"world\": 1, \"batch_per_rank\": 128, \"step_ms\": 3.0}\n"
    "{\"impl\": \"batchscope\", \"model\": \"cnn\", \"world\": 1, \"batch_per_rank\": 128, \"step_ms\": 20.0}\n";

TEST(BenchEstimate, ParsesOnlyBatchscopeLines) {
  const auto points = parse_bench_lines(kLines, "bench.jsonl");
  ASSERT_EQ(points.size(), 3u);
  EXPECT_EQ(points[1].model, "mlp");
  EXPECT_EQ(points[1].batch_per_rank, 128);
  EXPECT_DOUBLE_EQ(points[1].step_ms, 3.0);
  try {
    parse_bench_lines("{\"impl\": \"batchscope\", \"model\": \"mlp\"}\n", "b.jsonl");
    FAIL() << "a line without batch_per_rank and step_ms must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("line 1"), std::string::npos) << e.what();
    EXPECT_EQ(e.file(), "b.jsonl");
  }
}

TEST(BenchEstimate, InterpolatesInLogBatchAndExtrapolatesByCost) {
  const auto points = parse_bench_lines(kLines, "bench.jsonl");
  EXPECT_DOUBLE_EQ(estimate_step_ms(points, "mlp", 32), 1.0);
  EXPECT_DOUBLE_EQ(estimate_step_ms(points, "mlp", 64), 2.0);    // halfway in log(batch)
  EXPECT_DOUBLE_EQ(estimate_step_ms(points, "mlp", 16), 1.0);    // below: launch-bound, the smallest's
  EXPECT_DOUBLE_EQ(estimate_step_ms(points, "mlp", 512), 12.0);  // above: proportional to the batch
  EXPECT_DOUBLE_EQ(estimate_step_ms(points, "cnn", 64), 20.0);
  EXPECT_TRUE(std::isnan(estimate_step_ms(points, "torchscript", 64)));
}

TEST(BenchEstimate, SumsStepsTimesStepTimeOverRuns) {
  Study st = parse_study(
      "study: e\ndata: {name: synthetic, train_size: 1024}\nmodel: {name: mlp}\nbudget: {steps: 100}\n"
      "runs: [{name: a, batch: [32]}, {name: b, batch: [16, 48]}]\n",
      "study.yaml");
  const StudyEstimate e = estimate_study(st, parse_bench_lines(kLines, "bench.jsonl"));
  EXPECT_EQ(e.runs_estimated, 2);
  EXPECT_EQ(e.runs_without, 0);
  // a: 100 steps x 1 ms; b: its slowest rank (48) sets the pace, log-interpolated between 32 and 128.
  const double ms48 = 1.0 + 2.0 * std::log(48.0 / 32.0) / std::log(4.0);
  EXPECT_NEAR(e.run_seconds, 0.1 + 100 * ms48 / 1e3, 1e-12);
}

}  // namespace
}  // namespace bs
