// The portable squared-norm kernel: plain C++ that the compiler vectorizes
// for the target's baseline (SSE2 on x86-64, NEON on AArch64).
#include "train/sqnorm_kernel.h"

namespace bs::sqnorm_detail {

double sum_squares_portable(const float* x, int64_t n) {
  double lanes[kLanes] = {};
  const int64_t full = n - n % kLanes;
  for (int64_t k = 0; k < full; k += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const double v = x[k + l];
      lanes[l] += v * v;
    }
  }
  add_tail(x, full, n, lanes);
  return sum_lanes(lanes);
}

}  // namespace bs::sqnorm_detail
