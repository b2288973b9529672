#pragma once
// `check --bench FILE`: the study's training time estimated from step times
// that `batchscope bench` measured (its JSON lines, as tests/bench/compare.py
// --out collects them). Pure, so it is tested without a benchmark.
#include <cstdint>
#include <string>
#include <vector>

#include "config/study.h"

namespace bs {

struct BenchPoint {
  std::string model;  // "mlp", "cnn", "torchscript"
  int64_t batch_per_rank = 0;
  double step_ms = 0;
};

// The batchscope lines of a bench JSON-lines text (other lines, such as the
// baseline's, are skipped); `file` names it in errors. A malformed batchscope
// line is a ConfigError naming the file and line.
std::vector<BenchPoint> parse_bench_lines(const std::string& text, const std::string& file);

// Step time of `model` at per-rank batch `batch`: measured, or interpolated
// linearly in log(batch) between the nearest measured batches; beyond the
// largest, proportional to the batch (compute-bound); below the smallest,
// the smallest's (launch-bound). NaN when `model` was not measured.
double estimate_step_ms(const std::vector<BenchPoint>& points, const std::string& model, int64_t batch);

struct StudyEstimate {
  double run_seconds = 0;  // summed over runs (groups that train at once divide it)
  int runs_estimated = 0, runs_without = 0;
};
// Each run's steps times the step time at its largest per-rank batch (the
// slowest rank sets the pace); evaluations are not included.
StudyEstimate estimate_study(const Study& study, const std::vector<BenchPoint>& points);

}  // namespace bs
