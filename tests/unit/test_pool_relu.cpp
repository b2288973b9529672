// models/pool_relu: the cnn's fused relu(max_pool2d(x, 2)) against LibTorch's
// two ops, bit for bit: values, gradients, and the double backward that the
// sharpness' Hessian-vector products take. Inputs with ties (the first
// maximum must win), NaNs (taken, and passing the gradient), non-positive
// windows (zeroed, no gradient) and odd sizes (the floored row and column
// get no gradient).
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "models/pool_relu.h"

namespace bs {
namespace {

at::Tensor reference(const at::Tensor& x) { return at::relu(at::max_pool2d(x, {2, 2})); }

// Channels-last values on a coarse grid (many ties, and exact zeros), with a
// few NaNs when asked.
at::Tensor input(std::vector<int64_t> sizes, uint64_t seed, bool nans) {
  at::manual_seed(seed);
  at::Tensor x = at::randint(-4, 5, sizes, at::kFloat) * 0.5f;
  if (nans) {
    at::Tensor flat = x.view({-1});
    for (int64_t k = 7; k < flat.numel(); k += 97) flat[k] = std::numeric_limits<float>::quiet_NaN();
  }
  return x.contiguous(at::MemoryFormat::ChannelsLast);
}

// Equal bit for bit, NaNs in the same places.
void expect_same(const at::Tensor& a, const at::Tensor& b, const char* what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  EXPECT_TRUE(at::equal(at::isnan(a), at::isnan(b))) << what << ": NaNs differ";
  EXPECT_TRUE(at::equal(at::nan_to_num(a, 123.f), at::nan_to_num(b, 123.f))) << what;
}

struct Case {
  std::vector<int64_t> sizes;
  bool nans;
};

const std::vector<Case> kCases = {
    {{3, 32, 28, 28}, false}, {{2, 64, 14, 14}, false}, {{2, 5, 7, 7}, false},
    {{1, 3, 5, 6}, true},     {{2, 1, 4, 9}, true},     {{2, 32, 28, 28}, true},
};

TEST(PoolRelu, AppliesToChannelsLastFloatOnly) {
  const at::Tensor x = input({2, 3, 4, 4}, 1, false);
  EXPECT_TRUE(pool_relu_kernel_applies(x));
  EXPECT_FALSE(pool_relu_kernel_applies(x.contiguous()));
  EXPECT_FALSE(pool_relu_kernel_applies(x.to(at::kDouble)));
  EXPECT_FALSE(pool_relu_kernel_applies(input({2, 3, 1, 4}, 1, false)));
}

TEST(PoolRelu, ValuesAreLibTorchs) {
  for (const Case& c : kCases) {
    const at::Tensor x = input(c.sizes, 2, c.nans);
    const at::Tensor y = max_pool2_relu(x);
    expect_same(y, reference(x), "values");
    EXPECT_TRUE(y.is_contiguous(at::MemoryFormat::ChannelsLast));
  }
}

TEST(PoolRelu, GradientsAreLibTorchs) {
  for (const Case& c : kCases) {
    const at::Tensor x = input(c.sizes, 3, c.nans).requires_grad_(true);
    at::manual_seed(4);
    const at::Tensor r = at::randn(reference(x).sizes());
    const at::Tensor mine = torch::autograd::grad({(max_pool2_relu(x) * r).sum()}, {x})[0];
    const at::Tensor theirs = torch::autograd::grad({(reference(x) * r).sum()}, {x})[0];
    expect_same(mine, theirs, "gradient");
    EXPECT_GT(mine.ne(0).sum().item<int64_t>(), 0);
  }
}

// d/dx <d/dx sum(r * y^2), v>: the first backward builds a graph through the
// pool's backward, which the second differentiates.
at::Tensor hessian_vector(const at::Tensor& x, const at::Tensor& r, const at::Tensor& v, bool kernel) {
  const at::Tensor y = kernel ? max_pool2_relu(x) : reference(x);
  const at::Tensor g = torch::autograd::grad({(r * y * y).sum()}, {x}, {}, true, true)[0];
  return torch::autograd::grad({(g * v).sum()}, {x})[0];
}

TEST(PoolRelu, DoubleBackwardIsLibTorchs) {
  for (const Case& c : kCases) {
    if (c.nans) continue;
    const at::Tensor x = input(c.sizes, 5, false).requires_grad_(true);
    at::manual_seed(6);
    const at::Tensor r = at::randn(reference(x).sizes());
    const at::Tensor v = at::randn(c.sizes);
    const at::Tensor mine = hessian_vector(x, r, v, true);
    expect_same(mine, hessian_vector(x, r, v, false), "Hessian-vector product");
    EXPECT_GT(mine.ne(0).sum().item<int64_t>(), 0);
  }
}

}  // namespace
}  // namespace bs
