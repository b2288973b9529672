// The first convolution's kernels on processors without dedicated ones
// (CMake compiles first_conv_x86.cpp instead on x86-64).
#include "models/first_conv.h"

namespace bs::first_conv_detail {

void forward_image(const PaddedImage& x, const float* wt, const float* b, float* y) {
  forward_image_portable(x, wt, b, y);
}

void weight_grad_image(const PaddedImage& x, const float* gy, float* dw) { weight_grad_image_portable(x, gy, dw); }

}  // namespace bs::first_conv_detail
