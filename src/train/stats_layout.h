#pragma once
// The one reduction buffer of a training step, and the ring row that keeps a
// step's statistics on the device until the next log interval.
//
// One allreduce per step both combines the gradient and gives every rank every
// rank's statistics: each rank writes only its own slots (the others stay
// zero), so the sum is the concatenation. The whole group then sees identical
// numbers and agrees on divergence without another message. The two flags are
// raised by any rank (a stop signal; the leader's checkpoint timer): after the
// sum every rank sees them at the same step, so all checkpoint and stop
// together.
//
//   buffer   = [ gradient (P) | extras (E) ]
//   extras   = [ loss_i (n) | s_i (n) | s_k per micro-batch (K) | per-layer s_k (K*L) | stop | checkpoint ]
//   ring row = [ extras (E) | S = |G|^2 | per-layer S (L) ]
//
// n ranks, m micro-batches per rank, K = n*m, L layers (0 without
// gns.per_layer). Offsets in extras and in the ring row are the same for the
// extras part, so a row is a copy of extras followed by the global norms.
// Torch-free: the trainer indexes tensors with it, the test checks it alone.
#include <cstdint>
#include <vector>

#include "train/records.h"

namespace bs {

class StatsLayout {
 public:
  StatsLayout(int64_t params, int ranks, int64_t micro_per_rank, int64_t layers);

  int64_t params() const { return params_; }
  int ranks() const { return static_cast<int>(n_); }
  int64_t micro_batches() const { return k_; }  // K = n*m
  int64_t layers() const { return l_; }

  // Offsets in extras (add params() for the offset in the whole buffer).
  int64_t loss(int rank) const { return rank; }
  int64_t sq_local(int rank) const { return n_ + rank; }
  int64_t sq_micro(int64_t q) const { return 2 * n_ + q; }               // q = rank * m + j
  int64_t layer_micro(int64_t q) const { return 2 * n_ + k_ + q * l_; }  // L slots from here
  int64_t stop_flag() const { return 2 * n_ + k_ + k_ * l_; }
  int64_t checkpoint_flag() const { return stop_flag() + 1; }
  int64_t extras() const { return stop_flag() + 2; }  // E
  int64_t buffer() const { return params_ + extras(); }

  // Offsets in a ring row.
  int64_t sq_global() const { return extras(); }
  int64_t layer_global() const { return extras() + 1; }  // L slots from here
  int64_t row_width() const { return extras() + 1 + l_; }

  // The statistics of one reduced ring row: losses weighted by
  // batch_per_rank[i] / global_batch, norms as floats. Step, lr, timing and
  // noise estimates are the caller's.
  void decode(const double* row, const std::vector<int64_t>& batch_per_rank, int64_t global_batch,
              StepRecord& out) const;
  bool stop_raised(const double* row) const { return row[stop_flag()] > 0; }
  bool checkpoint_raised(const double* row) const { return row[checkpoint_flag()] > 0; }

 private:
  int64_t params_, n_, k_, l_;
};

}  // namespace bs
