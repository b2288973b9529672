#pragma once
// Sweep expansion: global batch x lr x seed, each global batch split over the
// run's ranks equally or by weights.
#include <cstdint>
#include <string>
#include <vector>

#include "config/study.h"

namespace bs {

struct SweepSpec {
  std::vector<int64_t> global_batch;
  std::vector<double> lr;
  std::vector<uint64_t> seed;
  int ranks = 1;
  std::vector<double> weights;  // empty: equal split
};

// Splits B over weights.size() ranks in proportion to the weights (largest
// remainder, so the parts always sum to B). Throws std::invalid_argument when a
// part would be empty.
std::vector<int64_t> split_batch(int64_t global_batch, const std::vector<double>& weights);

std::string sweep_run_name(int64_t global_batch, double lr, uint64_t seed);

// Runs in a stable order: batch-major, then lr, then seed.
std::vector<RunSpec> expand_sweep(const SweepSpec& sweep);

}  // namespace bs
