#include "train/fused_sgd.h"

#include "train/fused_sgd_kernel.h"
#include "train/sqnorm.h"

namespace bs {

void sgd_detail::update_portable(float* p, float* buf, const float* g, int64_t n, const SgdScalars& s) {
  update_loops(p, buf, g, n, s);
}

void sgd_pass(float* p, float* buf, const float* g, int64_t n, const SgdScalars& s, double* sqnorm) {
  const double sum = sum_over_blocks(n, [&](int64_t from, int64_t len) {
    const double part = sqnorm ? sum_squares(g + from, len) : 0;
    sgd_detail::update(p + from, buf ? buf + from : nullptr, g + from, len, s);
    return part;
  });
  if (sqnorm) *sqnorm = sum;
}

}  // namespace bs
