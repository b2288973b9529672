// The SGD update on x86-64: the portable loops compiled for AVX2 with FMA (a
// target attribute, chosen at run time; the binary runs on any x86-64),
// where std::fma is one instruction instead of a library call: the same bits.
#include "train/fused_sgd.h"
#include "train/fused_sgd_kernel.h"

namespace bs {
namespace {

__attribute__((target("avx2,fma"))) void update_avx2(float* p, float* buf, const float* g, int64_t n,
                                                     const SgdScalars& s) {
  sgd_detail::update_loops(p, buf, g, n, s);
}

bool has_fma() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

}  // namespace

void sgd_detail::update(float* p, float* buf, const float* g, int64_t n, const SgdScalars& s) {
  static const bool fma = has_fma();
  if (fma)
    update_avx2(p, buf, g, n, s);
  else
    update_portable(p, buf, g, n, s);
}

}  // namespace bs
