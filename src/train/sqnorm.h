#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/ATen.h>

#include "train/sqnorm_kernel.h"

namespace bs {

// Squared norms of CPU float32 gradients in one read pass: each square in
// float64 (exact: a float's square fits a double's mantissa), summed in
// float64. Deterministic: the order of the additions depends on the length
// only, not on the instruction set (AVX2 or portable, the same bits) nor on
// the thread count. The trainer's CUDA tensors keep LibTorch's ops.

// Sum of x[k]^2 over fixed blocks of kSqnormBlock elements, in parallel
// (at::parallel_for), the blocks' sums then added in block order.
inline constexpr int64_t kSqnormBlock = int64_t{1} << 15;
double sum_squares_blocked(const float* x, int64_t n);

// block(from, len) for each block of [0, n) (the blocks above, in parallel),
// its results added in block order: the order behind sum_squares_blocked's
// bits, for the passes that sum squares while doing other work per block.
double sum_over_blocks(int64_t n, const std::function<double(int64_t from, int64_t len)>& block);

// One piece of a flat buffer to write: `size` floats from `src`, to `offset`.
struct FlatPiece {
  const float* src;
  int64_t offset, size;
};

// Writes the pieces (sorted by offset) into dst[0, n) and returns the sum of
// dst's squares with the same bits as sum_squares_blocked(dst, n) after the
// copies: each block is written, then summed while it is still in cache,
// which saves the norm's own read of the n floats. Parts of dst that no piece
// covers keep their values and count as they are.
double copy_sum_squares_blocked(const std::vector<FlatPiece>& pieces, float* dst, int64_t n);

// A float64 sum of squares as the float32 the statistics keep: past float's
// range inf, as LibTorch's float sum gives.
float sqnorm_to_float(double s);

// Whether t takes the kernel: a contiguous float32 tensor in CPU memory.
bool sqnorm_kernel_applies(const at::Tensor& t);

// |t|^2 as a 1-element float32 tensor on t's device; t must satisfy
// sqnorm_kernel_applies.
at::Tensor cpu_sqnorm(const at::Tensor& t);

}  // namespace bs
