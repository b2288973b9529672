#include "train/fused_sgd.h"

#include <algorithm>
#include <vector>

#include <ATen/Parallel.h>

#include "train/fused_sgd_kernel.h"
#include "train/sqnorm.h"

namespace bs {

void sgd_detail::update_portable(float* p, float* buf, const float* g, int64_t n, const SgdScalars& s) {
  update_loops(p, buf, g, n, s);
}

void sgd_pass(float* p, float* buf, const float* g, int64_t n, const SgdScalars& s, double* sqnorm) {
  const int64_t blocks = (n + kSqnormBlock - 1) / kSqnormBlock;
  std::vector<double> part(static_cast<size_t>(blocks));
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t from = b * kSqnormBlock, len = std::min(kSqnormBlock, n - from);
      if (sqnorm) part[static_cast<size_t>(b)] = sum_squares(g + from, len);
      sgd_detail::update(p + from, buf ? buf + from : nullptr, g + from, len, s);
    }
  });
  if (!sqnorm) return;
  double sum = 0;
  for (const double x : part) sum += x;
  *sqnorm = sum;
}

}  // namespace bs
