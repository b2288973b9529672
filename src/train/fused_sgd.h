#pragma once
// SGD's update over CPU float32 buffers in one pass, the gradient's squared
// norm read in the same pass (FlatOptimizer::fused_step uses it on the CPU).
#include <cstdint>

namespace bs {

// One step's scalars, as floats (LibTorch rounds them so for float tensors).
struct SgdScalars {
  float momentum = 0, neg_lr = 0, weight_decay = 0;
  bool nesterov = false;
};

// For k in [0, n), as FlatOptimizer::apply's LibTorch ops compute it:
//   d = fma(p[k], weight_decay, g[k])  (g[k] without weight decay; add with alpha)
//   b = buf[k] * momentum + d, two roundings (mul_ then add_); buf[k] = b
//   d = nesterov ? fma(b, momentum, d) : b
//   p[k] = fma(d, neg_lr, p[k])        (addcmul_)
// With buf == nullptr, plain SGD: no b. The fused multiply-adds are one
// rounding, as LibTorch computes them where its kernels use FMAs (AVX2
// builds; see FlatOptimizer::fused_step); the same bits on every processor
// (std::fma is exact-then-rounded). Block by block (train/sqnorm.h's blocks,
// in parallel), so a block of g is still in cache for the update after its
// squares are summed: with sqnorm != nullptr, *sqnorm =
// sum_squares_blocked(g, n), the same bits.
void sgd_pass(float* p, float* buf, const float* g, int64_t n, const SgdScalars& s, double* sqnorm);

namespace sgd_detail {

// One block's update: the kernel for this processor (fused_sgd_x86.cpp or
// fused_sgd_any.cpp), and the portable one every kernel matches bit for bit.
void update(float* p, float* buf, const float* g, int64_t n, const SgdScalars& s);
void update_portable(float* p, float* buf, const float* g, int64_t n, const SgdScalars& s);

}  // namespace sgd_detail
}  // namespace bs
