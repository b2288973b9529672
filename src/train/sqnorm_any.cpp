// sum_squares on processors without a dedicated kernel (CMake compiles
// sqnorm_x86.cpp instead on x86-64).
#include "train/sqnorm_kernel.h"

namespace bs {

double sum_squares(const float* x, int64_t n) { return sqnorm_detail::sum_squares_portable(x, n); }

}  // namespace bs
