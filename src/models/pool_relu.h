#pragma once

#include <ATen/core/Tensor.h>

namespace bs {

// relu(max_pool2d(x, 2)) in one pass, with LibTorch's values and gradients
// (see pool_relu.cpp for why). Applies to 4-D float32 CPU tensors stored
// channels-last; elsewhere the caller keeps LibTorch's two ops.
bool pool_relu_kernel_applies(const at::Tensor& x);

// The pooled and rectified x ([N, C, H/2, W/2], channels-last, the sizes
// floored as max_pool2d floors them). Differentiable to any order, so the
// sharpness' Hessian-vector products go through it.
at::Tensor max_pool2_relu(const at::Tensor& x);

}  // namespace bs
