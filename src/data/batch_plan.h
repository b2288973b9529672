#pragma once
// Which samples each rank trains on at each step. The whole group shares one
// permutation per epoch, seeded by (study seed, run seed, epoch); step k takes
// samples [kB, (k+1)B) of it and rank i the slice at offset sum_{j<i} B_j.
// So a run's trajectory does not depend on how B is split over ranks.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bs {

class BatchPlan {
 public:
  BatchPlan(int64_t train_size, std::vector<int64_t> batch_per_rank, uint64_t study_seed, uint64_t run_seed);

  int64_t global_batch() const { return global_batch_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  // step0 is 0-based; a global batch never straddles two epochs (the last
  // partial batch of an epoch is dropped).
  int64_t epoch_of(int64_t step0) const { return step0 / steps_per_epoch_; }
  // Offset into the epoch permutation where rank's slice starts at step0.
  int64_t offset(int64_t step0, int rank) const;
  int64_t length(int rank) const { return batch_per_rank_[static_cast<size_t>(rank)]; }
  std::vector<int64_t> epoch_permutation(int64_t epoch) const;

 private:
  int64_t train_size_;
  std::vector<int64_t> batch_per_rank_;
  std::vector<int64_t> prefix_;
  int64_t global_batch_ = 0;
  int64_t steps_per_epoch_ = 0;
  uint64_t study_seed_, run_seed_;
};

// The micro-batches of a rank's batch (gradient accumulation for the noise
// estimate): B_i split as equally as possible into m parts, larger ones first.
std::vector<int64_t> micro_batches(int64_t rank_batch, int64_t m);

// All ranks' micro-batches, rank-major (the "small batches" of the estimator).
std::vector<int64_t> micro_batches(const std::vector<int64_t>& batch_per_rank, int64_t m);

// The fixed training subset evaluated for the generalization gap: the same for
// every run of a study (seeded by the study seed only).
std::vector<int64_t> train_eval_indices(int64_t train_size, int64_t subset, uint64_t study_seed);

}  // namespace bs
