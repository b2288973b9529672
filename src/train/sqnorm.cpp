#include "train/sqnorm.h"

#include <algorithm>
#include <limits>
#include <vector>

#include <ATen/Parallel.h>

namespace bs {

double sum_squares_blocked(const float* x, int64_t n) {
  const int64_t blocks = (n + kSqnormBlock - 1) / kSqnormBlock;
  if (blocks <= 1) return sum_squares(x, n);
  std::vector<double> part(static_cast<size_t>(blocks));
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t from = b * kSqnormBlock;
      part[static_cast<size_t>(b)] = sum_squares(x + from, std::min(kSqnormBlock, n - from));
    }
  });
  double sum = 0;
  for (const double p : part) sum += p;
  return sum;
}

bool sqnorm_kernel_applies(const at::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() && !t.is_sparse();
}

at::Tensor cpu_sqnorm(const at::Tensor& t) {
  const double s = sum_squares_blocked(t.data_ptr<float>(), t.numel());
  // Past float's range: inf, as LibTorch's float sum gives (at::full would throw).
  constexpr float kMax = std::numeric_limits<float>::max();
  const float f = s > kMax ? std::numeric_limits<float>::infinity() : static_cast<float>(s);
  return at::full({1}, f, t.options().requires_grad(false));
}

}  // namespace bs
