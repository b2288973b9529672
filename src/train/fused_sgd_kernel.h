#pragma once
// The SGD update's loops, inlined into each kernel (fused_sgd.cpp's portable
// one, fused_sgd_x86.cpp's AVX2 one) so that each compiles them for its own
// target. Those files are built with -ffp-contract=off: only the std::fma is
// one rounding, buf * momentum + g stays two, as LibTorch's mul_ then add_.
#include <cmath>
#include <cstdint>

namespace bs::sgd_detail {

inline void update_loops(float* p, float* buf, const float* g, int64_t n, float momentum, float neg_lr) {
  if (!buf) {
    for (int64_t k = 0; k < n; ++k) p[k] = std::fma(g[k], neg_lr, p[k]);
    return;
  }
  for (int64_t k = 0; k < n; ++k) {
    const float b = buf[k] * momentum + g[k];
    buf[k] = b;
    p[k] = std::fma(b, neg_lr, p[k]);
  }
}

}  // namespace bs::sgd_detail
