#include "app/bench_estimate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "util/errors.h"

namespace bs {
namespace {

BenchPoint parse_point(const YAML::Node& j) {
  BenchPoint p;
  p.model = j["model"].as<std::string>();
  p.batch_per_rank = j["batch_per_rank"].as<int64_t>();
  p.step_ms = j["step_ms"].as<double>();
  if (p.batch_per_rank < 1 || !(p.step_ms > 0)) throw std::invalid_argument("batch_per_rank or step_ms out of range");
  return p;
}

}  // namespace

std::vector<BenchPoint> parse_bench_lines(const std::string& text, const std::string& file) {
  std::vector<BenchPoint> out;
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find("\"impl\": \"batchscope\"") == std::string::npos) continue;
    try {
      out.push_back(parse_point(YAML::Load(line)));  // JSON is YAML
    } catch (const std::exception& e) {
      throw ConfigError(
          file, "--bench",
          "line " + std::to_string(n) +
              " is not a batchscope bench result (JSON with model, batch_per_rank, step_ms): " + e.what());
    }
  }
  return out;
}

double estimate_step_ms(const std::vector<BenchPoint>& points, const std::string& model, int64_t batch) {
  std::vector<std::pair<double, double>> xy;  // (log batch, step ms)
  for (const auto& p : points)
    if (p.model == model) xy.emplace_back(std::log(static_cast<double>(p.batch_per_rank)), p.step_ms);
  if (xy.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(xy.begin(), xy.end());
  const double x = std::log(static_cast<double>(batch));
  if (x <= xy.front().first) return xy.front().second;
  if (x >= xy.back().first) return xy.back().second * std::exp(x - xy.back().first);
  const auto hi = std::lower_bound(xy.begin(), xy.end(), std::make_pair(x, -1.0));
  const auto lo = hi - 1;
  if (hi->first == lo->first) return hi->second;
  const double t = (x - lo->first) / (hi->first - lo->first);
  return lo->second + t * (hi->second - lo->second);
}

StudyEstimate estimate_study(const Study& study, const std::vector<BenchPoint>& points) {
  StudyEstimate e;
  for (const auto& r : study.runs) {
    const int64_t batch = *std::max_element(r.batch_per_rank.begin(), r.batch_per_rank.end());
    const double ms = estimate_step_ms(points, study.model.name, batch);
    if (std::isnan(ms)) {
      ++e.runs_without;
      continue;
    }
    e.run_seconds += static_cast<double>(run_budget(study, r).total_steps) * ms / 1e3;
    ++e.runs_estimated;
  }
  return e;
}

}  // namespace bs
