#pragma once
// Everything a run needs to continue exactly where it stopped. The data order
// is a pure function of (study seed, run seed, epoch) and the step, and a
// model's randomness (dropout) is seeded from (study seed, run seed, rank,
// step), so no RNG state beyond those is needed.
#include <cstdint>
#include <vector>

#include "train/records.h"

namespace bs {

struct TrainState {
  int64_t step = 0;       // optimizer steps done; also /train rows written
  int64_t eval_rows = 0;  // /eval rows written
  double wall_s = 0;      // run time so far, so wall_s continues
  double best_val_acc = 0;
  int64_t target_step = -1;
  EvalRecord last_eval;
  std::vector<float> params;
  int64_t opt_steps = 0;                            // Adam's t
  std::vector<std::vector<float>> opt_bufs;         // momentum, or Adam's m and v
  double ema_tr = 0, ema_g2 = 0, ema_beta_pow = 1;  // the noise estimator
  // The model's buffers (BatchNorm running statistics), concatenated in
  // Model::buffers() order, as doubles (exact for float32 and for counters
  // below 2^53); averaged over the group's ranks before being saved.
  std::vector<double> buffers;
};

}  // namespace bs
