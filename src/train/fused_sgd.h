#pragma once
// SGD's update over CPU float32 buffers in one pass, the gradient's squared
// norm read in the same pass (FlatOptimizer::fused_step uses it on the CPU).
#include <cstdint>

namespace bs {

// For k in [0, n): b = buf[k] * momentum + g[k], rounded after the product
// and after the sum (LibTorch's mul_ then add_), buf[k] = b, and
// p[k] = fma(b, neg_lr, p[k]), one rounding, as LibTorch's addcmul_ does
// where its kernels use fused multiply-adds (AVX2 builds; see
// FlatOptimizer::fused_step). With buf == nullptr, plain SGD: b = g[k]. The
// same bits on every processor (std::fma is exact-then-rounded). Block by
// block (train/sqnorm.h's blocks, in parallel), so a block of g is still in
// cache for the update after its squares are summed: with sqnorm != nullptr,
// *sqnorm = sum_squares_blocked(g, n), the same bits.
void sgd_pass(float* p, float* buf, const float* g, int64_t n, float momentum, float neg_lr, double* sqnorm);

namespace sgd_detail {

// One block's update: the kernel for this processor (fused_sgd_x86.cpp or
// fused_sgd_any.cpp), and the portable one every kernel matches bit for bit.
void update(float* p, float* buf, const float* g, int64_t n, float momentum, float neg_lr);
void update_portable(float* p, float* buf, const float* g, int64_t n, float momentum, float neg_lr);

}  // namespace sgd_detail
}  // namespace bs
