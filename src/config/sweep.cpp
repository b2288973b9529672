#include "config/sweep.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <stdexcept>

namespace bs {

std::vector<int64_t> split_batch(int64_t global_batch, const std::vector<double>& weights) {
  const size_t n = weights.size();
  if (n == 0) throw std::invalid_argument("no ranks to split the batch over");
  double total = std::accumulate(weights.begin(), weights.end(), 0.0);
  std::vector<int64_t> parts(n);
  std::vector<std::pair<double, size_t>> rest(n);
  int64_t used = 0;
  for (size_t i = 0; i < n; ++i) {
    double exact = global_batch * weights[i] / total;
    parts[i] = static_cast<int64_t>(std::floor(exact));
    rest[i] = {exact - parts[i], i};
    used += parts[i];
  }
  // Largest remainder first; ties go to the lower rank, so equal weights give
  // the first ranks the extra samples.
  std::stable_sort(rest.begin(), rest.end(), [](auto& a, auto& b) { return a.first > b.first; });
  for (int64_t k = 0; k < global_batch - used; ++k) parts[rest[static_cast<size_t>(k)].second] += 1;
  for (size_t i = 0; i < n; ++i)
    if (parts[i] <= 0)
      throw std::invalid_argument("global batch " + std::to_string(global_batch) + " split over " + std::to_string(n) +
                                  " ranks leaves rank " + std::to_string(i) + " with no samples");
  return parts;
}

std::string sweep_run_name(int64_t global_batch, double lr, uint64_t seed) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "b%lld_lr%g_s%llu", static_cast<long long>(global_batch), lr,
                static_cast<unsigned long long>(seed));
  return buf;
}

std::vector<RunSpec> expand_sweep(const SweepSpec& sweep) {
  std::vector<double> weights = sweep.weights;
  if (weights.empty()) weights.assign(static_cast<size_t>(sweep.ranks), 1.0);
  std::vector<RunSpec> runs;
  for (int64_t b : sweep.global_batch) {
    auto parts = split_batch(b, weights);
    for (double lr : sweep.lr)
      for (uint64_t seed : sweep.seed) {
        RunSpec r;
        r.name = sweep_run_name(b, lr, seed);
        r.batch_per_rank = parts;
        r.lr = lr;
        r.seed = seed;
        runs.push_back(r);
      }
  }
  return runs;
}

}  // namespace bs
