#include "train/schedule.h"

#include <cmath>

namespace bs {

double lr_at(int64_t step0, const RunBudget& b, const OptimizerSpec& opt) {
  if (step0 < b.warmup_steps) return b.peak_lr * static_cast<double>(step0 + 1) / static_cast<double>(b.warmup_steps);
  if (opt.schedule == "cosine") {
    const double span = static_cast<double>(std::max<int64_t>(1, b.total_steps - b.warmup_steps));
    const double progress = static_cast<double>(step0 - b.warmup_steps) / span;
    return b.peak_lr * 0.5 * (1.0 + std::cos(3.141592653589793 * progress));
  }
  return b.peak_lr;
}

}  // namespace bs
