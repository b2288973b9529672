#include "train/sqnorm.h"

#include <algorithm>
#include <limits>
#include <vector>

#include <ATen/Parallel.h>

namespace bs {

double sum_over_blocks(int64_t n, const std::function<double(int64_t, int64_t)>& block) {
  const int64_t blocks = (n + kSqnormBlock - 1) / kSqnormBlock;
  std::vector<double> part(static_cast<size_t>(blocks));
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      part[static_cast<size_t>(b)] = block(b * kSqnormBlock, std::min(kSqnormBlock, n - b * kSqnormBlock));
  });
  double sum = 0;
  for (const double p : part) sum += p;
  return sum;
}

double sum_squares_blocked(const float* x, int64_t n) {
  return sum_over_blocks(n, [x](int64_t from, int64_t len) { return sum_squares(x + from, len); });
}

namespace {

// The pieces' floats that fall in dst[from, to), copied.
void copy_block(const std::vector<FlatPiece>& pieces, float* dst, int64_t from, int64_t to) {
  auto it = std::upper_bound(pieces.begin(), pieces.end(), from,
                             [](int64_t at, const FlatPiece& p) { return at < p.offset + p.size; });
  for (; it != pieces.end() && it->offset < to; ++it) {
    const int64_t lo = std::max(from, it->offset), hi = std::min(to, it->offset + it->size);
    std::copy(it->src + (lo - it->offset), it->src + (hi - it->offset), dst + lo);
  }
}

}  // namespace

double copy_sum_squares_blocked(const std::vector<FlatPiece>& pieces, float* dst, int64_t n) {
  return sum_over_blocks(n, [&](int64_t from, int64_t len) {
    copy_block(pieces, dst, from, from + len);
    return sum_squares(dst + from, len);
  });
}

float sqnorm_to_float(double s) {
  constexpr float kMax = std::numeric_limits<float>::max();
  return s > kMax ? std::numeric_limits<float>::infinity() : static_cast<float>(s);
}

bool sqnorm_kernel_applies(const at::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() && !t.is_sparse();
}

at::Tensor cpu_sqnorm(const at::Tensor& t) {
  // Past float's range: inf (at::full would throw on the double).
  const float f = sqnorm_to_float(sum_squares_blocked(t.data_ptr<float>(), t.numel()));
  return at::full({1}, f, t.options().requires_grad(false));
}

}  // namespace bs
