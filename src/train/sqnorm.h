#pragma once

#include <cstdint>

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

// Whether t takes the kernel: a contiguous float32 tensor in CPU memory.
bool sqnorm_kernel_applies(const at::Tensor& t);

// |t|^2 as a 1-element float32 tensor on t's device; t must satisfy
// sqnorm_kernel_applies.
at::Tensor cpu_sqnorm(const at::Tensor& t);

}  // namespace bs
