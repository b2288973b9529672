// models/first_conv: the cnn's first convolution on the CPU against
// at::conv2d (values, gradients in w and b, and the double backward of the
// sharpness' Hessian-vector products), the processor's kernels against the
// portable loops bit for bit, the same bits at any thread count, and which
// inputs it takes.
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "models/first_conv.h"

namespace bs {
namespace {

struct Layer {
  at::Tensor x, w, b;
};

// Data [n, c, h, w], and weights that need gradients, as the model's views.
Layer layer(int64_t n, int64_t c, int64_t h, int64_t w, uint64_t seed) {
  at::manual_seed(seed);
  return {at::randn({n, c, h, w}), (at::randn({32, c, 5, 5}) * 0.2).requires_grad_(true),
          at::randn({32}).requires_grad_(true)};
}

at::Tensor reference(const Layer& l, const at::Tensor& w, const at::Tensor& b) {
  return at::conv2d(l.x, w, b, {1, 1}, {2, 2});
}

const std::vector<std::vector<int64_t>> kShapes = {{3, 1, 28, 28}, {2, 3, 32, 32}, {2, 2, 5, 7}, {1, 1, 1, 3}};

TEST(FirstConv, ValuesAreConv2ds) {
  for (const auto& s : kShapes) {
    const Layer l = layer(s[0], s[1], s[2], s[3], 1);
    ASSERT_TRUE(first_conv_kernel_applies(l.x, l.w, l.b));
    const at::Tensor y = first_conv5x5(l.x, l.w, l.b);
    EXPECT_TRUE(y.is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(at::allclose(y, reference(l, l.w, l.b), 1e-5, 1e-5)) << s[1] << " channels, " << s[2] << "x" << s[3];
  }
}

TEST(FirstConv, GradientsAreConv2ds) {
  for (const auto& s : kShapes) {
    const Layer l = layer(s[0], s[1], s[2], s[3], 2);
    const at::Tensor r = at::randn({s[0], 32, s[2], s[3]});
    const auto mine = torch::autograd::grad({(first_conv5x5(l.x, l.w, l.b) * r).sum()}, {l.w, l.b});
    const auto theirs = torch::autograd::grad({(reference(l, l.w, l.b) * r).sum()}, {l.w, l.b});
    EXPECT_TRUE(at::allclose(mine[0], theirs[0], 1e-4, 1e-4)) << "weights, " << s[1] << " channels";
    EXPECT_TRUE(at::allclose(mine[1], theirs[1], 1e-4, 1e-4)) << "bias, " << s[1] << " channels";
    EXPECT_GT(mine[0].abs().max().item<float>(), 0.f);
  }
}

// d/dw <d/dw sum(r * y^2), v>, y = conv(x, w, b): the first backward builds a
// graph through the weight gradient, which the second differentiates.
std::vector<at::Tensor> hessian_vector(const Layer& l, const at::Tensor& r, const at::Tensor& vw, const at::Tensor& vb,
                                       bool kernel) {
  const at::Tensor y = kernel ? first_conv5x5(l.x, l.w, l.b) : reference(l, l.w, l.b);
  const auto g = torch::autograd::grad({(r * y * y).sum()}, {l.w, l.b}, {}, true, true);
  return torch::autograd::grad({(g[0] * vw).sum() + (g[1] * vb).sum()}, {l.w, l.b});
}

TEST(FirstConv, DoubleBackwardIsConv2ds) {
  for (const auto& s : kShapes) {
    const Layer l = layer(s[0], s[1], s[2], s[3], 3);
    const at::Tensor r = at::randn({s[0], 32, s[2], s[3]});
    const at::Tensor vw = at::randn(l.w.sizes()), vb = at::randn({32});
    const auto mine = hessian_vector(l, r, vw, vb, true);
    const auto theirs = hessian_vector(l, r, vw, vb, false);
    for (size_t k = 0; k < 2; ++k) {
      const double scale = theirs[k].abs().max().item<double>();
      EXPECT_GT(scale, 0) << k;
      EXPECT_TRUE(at::allclose(mine[k], theirs[k], 1e-4, 1e-4 * scale)) << "part " << k << ", " << s[1] << " channels";
    }
  }
}

// The padded image and buffers for the kernels, called directly.
struct Image {
  std::vector<float> padded, wt, b, gy;
  first_conv_detail::PaddedImage view;
};

Image image(int64_t c, int64_t h, int64_t w, uint64_t seed) {
  at::manual_seed(seed);
  Image im;
  const at::Tensor x = at::constant_pad_nd(at::randn({c, h, w}), {2, 2, 2, 2}).contiguous();
  im.padded.assign(x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
  const at::Tensor wt = at::randn({c * 25, 32}), b = at::randn({32}), gy = at::randn({h * w * 32});
  im.wt.assign(wt.data_ptr<float>(), wt.data_ptr<float>() + wt.numel());
  im.b.assign(b.data_ptr<float>(), b.data_ptr<float>() + 32);
  im.gy.assign(gy.data_ptr<float>(), gy.data_ptr<float>() + gy.numel());
  im.view = {im.padded.data(), c, h, w};
  return im;
}

TEST(FirstConv, KernelsMatchPortableBits) {
  for (const auto& s : kShapes) {
    const Image im = image(s[1], s[2], s[3], 4);
    const size_t outputs = static_cast<size_t>(s[2] * s[3] * 32), taps = static_cast<size_t>(s[1] * 25 * 32);
    std::vector<float> y(outputs), y_portable(outputs), dw(taps), dw_portable(taps);
    first_conv_detail::forward_image(im.view, im.wt.data(), im.b.data(), y.data());
    first_conv_detail::forward_image_portable(im.view, im.wt.data(), im.b.data(), y_portable.data());
    first_conv_detail::weight_grad_image(im.view, im.gy.data(), dw.data());
    first_conv_detail::weight_grad_image_portable(im.view, im.gy.data(), dw_portable.data());
    EXPECT_EQ(y, y_portable) << s[1] << " channels, " << s[2] << "x" << s[3];
    EXPECT_EQ(dw, dw_portable) << s[1] << " channels, " << s[2] << "x" << s[3];
  }
}

TEST(FirstConv, SameBitsAtAnyThreadCount) {
  const int threads = at::get_num_threads();
  const Layer l = layer(9, 1, 28, 28, 5);
  const at::Tensor r = at::randn({9, 32, 28, 28});
  std::vector<at::Tensor> runs;
  for (int t : {1, 3}) {
    at::set_num_threads(t);
    const at::Tensor y = first_conv5x5(l.x, l.w, l.b);
    runs.push_back(at::cat({y.reshape({-1}), torch::autograd::grad({(y * r).sum()}, {l.w})[0].reshape({-1})}));
  }
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(runs[0], runs[1]));
}

TEST(FirstConv, AppliesToItsLayerOnly) {
  const Layer l = layer(2, 1, 8, 8, 6);
  EXPECT_TRUE(first_conv_kernel_applies(l.x, l.w, l.b));
  EXPECT_FALSE(first_conv_kernel_applies(l.x.clone().requires_grad_(true), l.w, l.b)) << "the input needs a gradient";
  EXPECT_FALSE(first_conv_kernel_applies(l.x.to(at::kDouble), l.w, l.b));
  EXPECT_FALSE(first_conv_kernel_applies(l.x, at::randn({16, 1, 5, 5}), at::randn({16}))) << "16 filters";
  EXPECT_FALSE(first_conv_kernel_applies(l.x, at::randn({32, 1, 3, 3}), l.b)) << "3x3";
  EXPECT_FALSE(first_conv_kernel_applies(l.x, at::randn({32, 2, 5, 5}), l.b)) << "channels differ";
}

}  // namespace
}  // namespace bs
