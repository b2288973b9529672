// sum_squares on x86-64: an AVX2+FMA kernel chosen at run time, the portable
// kernel on processors without them. Only the kernel's function is compiled
// for AVX2 (a target attribute), so the binary runs on any x86-64.
#include <immintrin.h>

#include "train/sqnorm_kernel.h"

namespace bs {
namespace {

using sqnorm_detail::kLanes;

__attribute__((target("avx2,fma"))) double sum_squares_avx2(const float* x, int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  const int64_t full = n - n % kLanes;
  for (int64_t k = 0; k < full; k += kLanes) {
    const __m256 lo = _mm256_loadu_ps(x + k);
    const __m256 hi = _mm256_loadu_ps(x + k + 8);
    const __m256d v0 = _mm256_cvtps_pd(_mm256_castps256_ps128(lo));
    const __m256d v1 = _mm256_cvtps_pd(_mm256_extractf128_ps(lo, 1));
    const __m256d v2 = _mm256_cvtps_pd(_mm256_castps256_ps128(hi));
    const __m256d v3 = _mm256_cvtps_pd(_mm256_extractf128_ps(hi, 1));
    a0 = _mm256_fmadd_pd(v0, v0, a0);
    a1 = _mm256_fmadd_pd(v1, v1, a1);
    a2 = _mm256_fmadd_pd(v2, v2, a2);
    a3 = _mm256_fmadd_pd(v3, v3, a3);
  }
  double lanes[kLanes];
  _mm256_storeu_pd(lanes, a0);
  _mm256_storeu_pd(lanes + 4, a1);
  _mm256_storeu_pd(lanes + 8, a2);
  _mm256_storeu_pd(lanes + 12, a3);
  sqnorm_detail::add_tail(x, full, n, lanes);
  return sqnorm_detail::sum_lanes(lanes);
}

bool has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

}  // namespace

double sum_squares(const float* x, int64_t n) {
  static const bool avx2 = has_avx2();
  return avx2 ? sum_squares_avx2(x, n) : sqnorm_detail::sum_squares_portable(x, n);
}

}  // namespace bs
