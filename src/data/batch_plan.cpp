#include "data/batch_plan.h"

#include <algorithm>
#include <stdexcept>

#include "config/sweep.h"
#include "util/rng.h"

namespace bs {

BatchPlan::BatchPlan(int64_t train_size, std::vector<int64_t> batch_per_rank, uint64_t study_seed, uint64_t run_seed)
    : train_size_(train_size),
      batch_per_rank_(std::move(batch_per_rank)),
      study_seed_(study_seed),
      run_seed_(run_seed) {
  for (auto b : batch_per_rank_) {
    if (b <= 0) throw std::invalid_argument("per-rank batch sizes must be positive");
    prefix_.push_back(global_batch_);
    global_batch_ += b;
  }
  if (global_batch_ == 0) throw std::invalid_argument("a batch plan needs at least one rank");
  steps_per_epoch_ = train_size_ / global_batch_;
  if (steps_per_epoch_ < 1) throw std::invalid_argument("global batch exceeds the training set");
}

int64_t BatchPlan::offset(int64_t step0, int rank) const {
  return (step0 % steps_per_epoch_) * global_batch_ + prefix_[static_cast<size_t>(rank)];
}

std::vector<int64_t> BatchPlan::epoch_permutation(int64_t epoch) const {
  return permutation(train_size_, mix_seed({study_seed_, run_seed_, static_cast<uint64_t>(epoch)}));
}

std::vector<int64_t> micro_batches(int64_t rank_batch, int64_t m) {
  return split_batch(rank_batch, std::vector<double>(static_cast<size_t>(m), 1.0));
}

std::vector<int64_t> micro_batches(const std::vector<int64_t>& batch_per_rank, int64_t m) {
  std::vector<int64_t> out;
  for (auto b : batch_per_rank) {
    auto part = micro_batches(b, m);
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

std::vector<int64_t> train_eval_indices(int64_t train_size, int64_t subset, uint64_t study_seed) {
  auto p = permutation(train_size, mix_seed({study_seed, 0x7ea1u}));
  p.resize(static_cast<size_t>(std::min(subset, train_size)));
  std::sort(p.begin(), p.end());  // sequential gathers
  return p;
}

}  // namespace bs
