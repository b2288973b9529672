#pragma once
// The cnn's first convolution on the CPU: 32 filters of 5x5, "same" padding,
// over the data (which needs no gradient), by direct loops (see
// first_conv.cpp for why).
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace bs {

// Whether the kernel takes x [N, C, H, W] and w [32, C, 5, 5], b [32]: CPU
// float32 and an x that needs no gradient; elsewhere the caller keeps
// at::conv2d.
bool first_conv_kernel_applies(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

// conv2d(x, w, b, stride 1, padding 2) as [N, 32, H, W] in channels-last
// memory (the layout the pool reads). Differentiable to any order in w and b
// (the sharpness' Hessian-vector products), not in x.
at::Tensor first_conv5x5(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

namespace first_conv_detail {

inline constexpr int64_t kFilters = 32;

// One image, zero-padded by 2 on each side: [c, h + 4, w + 4].
struct PaddedImage {
  const float* data;
  int64_t c, h, w;
  int64_t padded_w() const { return w + 4; }
  int64_t padded_h() const { return h + 4; }
  const float* at(int64_t ch, int64_t row, int64_t col) const {
    return data + (ch * padded_h() + row) * padded_w() + col;
  }
};

// y[(i * w + j) * 32 + k] = b[k], then + x(ch, i + r, j + s) * wt[tap][k] for
// the taps tap = (ch * 5 + r) * 5 + s in that order, each a fused
// multiply-add (one rounding): wt is [c * 25][32].
void forward_image(const PaddedImage& x, const float* wt, const float* b, float* y);
// dw[tap][k] = sum over the pixels (i, j), in row-major order, of
// x(ch, i + r, j + s) * gy[(i * w + j) * 32 + k], from 0, fused multiply-adds.
void weight_grad_image(const PaddedImage& x, const float* gy, float* dw);

// The same loops, plainly written: the kernels for this processor
// (first_conv_x86.cpp or first_conv_any.cpp) match them bit for bit.
void forward_image_portable(const PaddedImage& x, const float* wt, const float* b, float* y);
void weight_grad_image_portable(const PaddedImage& x, const float* gy, float* dw);

}  // namespace first_conv_detail
}  // namespace bs
