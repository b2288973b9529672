#pragma once
// The SGD update's loops, inlined into each kernel (fused_sgd.cpp's portable
// one, fused_sgd_x86.cpp's AVX2 one) so that each compiles them for its own
// target. Those files are built with -ffp-contract=off: only the std::fma is
// one rounding, buf * momentum + d stays two, as LibTorch's mul_ then add_.
#include <cmath>
#include <cstdint>

#include "train/fused_sgd.h"

namespace bs::sgd_detail {

// One loop per combination, its branches decided at compile time, and
// restrict pointers (parameters, momentum and gradient are separate buffers):
// with the branches inside one loop GCC vectorized nothing (417 against 128
// us for 535,818 floats), and without restrict not the weight-decay loops.
template <bool kDecay, bool kMomentum, bool kNesterov>
inline void update_loop(float* __restrict p, float* __restrict buf, const float* __restrict g, int64_t n,
                        const SgdScalars& s) {
  for (int64_t k = 0; k < n; ++k) {
    float d = kDecay ? std::fma(p[k], s.weight_decay, g[k]) : g[k];
    if constexpr (kMomentum) {
      const float b = buf[k] * s.momentum + d;
      buf[k] = b;
      d = kNesterov ? std::fma(b, s.momentum, d) : b;
    }
    p[k] = std::fma(d, s.neg_lr, p[k]);
  }
}

// Direct calls, so that each loop is inlined into (compiled for) its caller.
inline void update_loops(float* p, float* buf, const float* g, int64_t n, const SgdScalars& s) {
  const bool decay = s.weight_decay != 0;
  if (!buf && decay) return update_loop<true, false, false>(p, buf, g, n, s);
  if (!buf) return update_loop<false, false, false>(p, buf, g, n, s);
  if (s.nesterov && decay) return update_loop<true, true, true>(p, buf, g, n, s);
  if (s.nesterov) return update_loop<false, true, true>(p, buf, g, n, s);
  if (decay) return update_loop<true, true, false>(p, buf, g, n, s);
  update_loop<false, true, false>(p, buf, g, n, s);
}

}  // namespace bs::sgd_detail
