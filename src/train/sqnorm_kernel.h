#pragma once

#include <cstdint>

namespace bs {

// Sum of x[k]^2 over one range, each square in float64 (exact: a float's
// square fits a double's mantissa) and summed in float64, in the order below:
// the same bits for the AVX2 kernel (sqnorm_x86.cpp) and the portable one.
double sum_squares(const float* x, int64_t n);

namespace sqnorm_detail {

// The order every sum_squares kernel follows: element k of a range goes to
// lane k % kLanes (in float64, the square exact), the lanes are then added
// as a fixed tree. An AVX2 kernel holds the lanes in four registers of four
// doubles and its fused multiply-add rounds once, as the portable x*x + a
// does (x*x being exact), so both give the same bits.
inline constexpr int kLanes = 16;

// Elements [from, n) of x into the lanes, one by one.
inline void add_tail(const float* x, int64_t from, int64_t n, double* lanes) {
  for (int64_t k = from; k < n; ++k) {
    const double v = x[k];
    lanes[k % kLanes] += v * v;
  }
}

// ((l0+l8) + (l4+l12)) + ((l2+l10) + (l6+l14)) + ... : halves, then halves.
inline double sum_lanes(double* lanes) {
  for (int width = kLanes / 2; width >= 1; width /= 2)
    for (int l = 0; l < width; ++l) lanes[l] += lanes[l + width];
  return lanes[0];
}

// The portable kernel (sqnorm_portable.cpp), also the x86 fallback.
double sum_squares_portable(const float* x, int64_t n);

}  // namespace sqnorm_detail
}  // namespace bs
