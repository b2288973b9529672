// The SGD update on processors without a dedicated kernel (CMake compiles
// fused_sgd_x86.cpp instead on x86-64).
#include "train/fused_sgd.h"

namespace bs {

void sgd_detail::update(float* p, float* buf, const float* g, int64_t n, const SgdScalars& s) {
  update_portable(p, buf, g, n, s);
}

}  // namespace bs
