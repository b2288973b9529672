#include "models/first_conv.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

// Why direct loops: with 1 input channel (3 for colour) and 32 filters the
// layer is 25 (75) multiply-adds per output, too thin for a matrix product.
// As im2col + OpenBLAS (this file's predecessor) the step wrote the 10 MB
// patch matrix and OpenBLAS packed it and the gradient again: at batch 128
// (1 thread) forward 2.3 ms, weight gradient 4.6 ms, patches 0.3 ms and more.
// Here each image is padded into a small buffer and every output pixel's 32
// filters are accumulated in registers (first_conv_x86.cpp), and the weight
// gradient sums the pixels of one image per call.
//
// The arithmetic is fixed (first_conv.h): the same bits on any processor and
// at any thread count (each image's weight gradient is summed alone, and the
// images' sums are added in image order).
//
// The input is the data, so no gradient flows to it. In w and b the layer is
// linear: its derivative in w is the weight gradient below, whose derivative
// (in the gradient it was given) is the convolution again, so the two
// functions differentiate to each other, as the double backward of the
// Hessian-vector products needs.

namespace bs {
namespace first_conv_detail {

void forward_image_portable(const PaddedImage& x, const float* wt, const float* b, float* y) {
  for (int64_t i = 0; i < x.h; ++i)
    for (int64_t j = 0; j < x.w; ++j) {
      float* out = y + (i * x.w + j) * kFilters;
      std::copy_n(b, kFilters, out);
      for (int64_t tap = 0; tap < x.c * 25; ++tap) {
        const float v = *x.at(tap / 25, i + tap % 25 / 5, j + tap % 5);
        const float* wk = wt + tap * kFilters;
        for (int64_t k = 0; k < kFilters; ++k) out[k] = std::fma(v, wk[k], out[k]);
      }
    }
}

void weight_grad_image_portable(const PaddedImage& x, const float* gy, float* dw) {
  for (int64_t tap = 0; tap < x.c * 25; ++tap) {
    float* d = dw + tap * kFilters;
    std::fill_n(d, kFilters, 0.f);
    for (int64_t i = 0; i < x.h; ++i)
      for (int64_t j = 0; j < x.w; ++j) {
        const float v = *x.at(tap / 25, i + tap % 25 / 5, j + tap % 5);
        const float* g = gy + (i * x.w + j) * kFilters;
        for (int64_t k = 0; k < kFilters; ++k) d[k] = std::fma(v, g[k], d[k]);
      }
  }
}

}  // namespace first_conv_detail

namespace {

using first_conv_detail::kFilters;
using first_conv_detail::PaddedImage;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// fn(i, image i zero-padded) for every image of x [N, C, H, W], in parallel;
// each thread pads into its own buffer, whose border stays zero.
template <typename Fn>
void for_padded_images(const at::Tensor& x, const Fn& fn) {
  const int64_t c = x.size(1), h = x.size(2), w = x.size(3);
  const float* src = x.data_ptr<float>();
  at::parallel_for(0, x.size(0), 1, [&](int64_t begin, int64_t end) {
    std::vector<float> pad(static_cast<size_t>(c * (h + 4) * (w + 4)), 0.f);
    const PaddedImage image{pad.data(), c, h, w};
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t row = 0; row < h; ++row)
          std::copy_n(src + ((i * c + ch) * h + row) * w, w, pad.data() + (ch * (h + 4) + row + 2) * (w + 4) + 2);
      fn(i, image);
    }
  });
}

at::Tensor conv_values(const at::Tensor& x_any, const at::Tensor& w, const at::Tensor& b) {
  const at::Tensor x = x_any.contiguous();
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  const at::Tensor wt = w.detach().reshape({kFilters, c * 25}).t().contiguous();  // [tap][filter]
  const at::Tensor bias = b.detach().contiguous();
  at::Tensor y = at::empty({n, kFilters, h, wd}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const float* taps = wt.data_ptr<float>();
  const float* bias_in = bias.data_ptr<float>();
  float* out = y.data_ptr<float>();
  for_padded_images(x, [&](int64_t i, const PaddedImage& image) {
    first_conv_detail::forward_image(image, taps, bias_in, out + i * h * wd * kFilters);
  });
  return y;
}

// The weight gradient [32, C, 5, 5] for the output gradient gy.
at::Tensor weight_grad_values(const at::Tensor& gy_any, const at::Tensor& x_any) {
  const at::Tensor x = x_any.contiguous();
  const at::Tensor gy = gy_any.contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3), taps = c * 25 * kFilters;
  at::Tensor parts = at::empty({n, taps}, x.options());
  const float* g = gy.data_ptr<float>();
  float* part = parts.data_ptr<float>();
  for_padded_images(x, [&](int64_t i, const PaddedImage& image) {
    first_conv_detail::weight_grad_image(image, g + i * h * wd * kFilters, part + i * taps);
  });
  at::Tensor dw = at::zeros({c * 25, kFilters}, x.options());
  float* sum = dw.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t e = 0; e < taps; ++e) sum[e] += part[i * taps + e];
  return dw.t().contiguous().view({kFilters, c, 5, 5});
}

struct WeightGradFn : public torch::autograd::Function<WeightGradFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gy, const at::Tensor& x) {
    ctx->saved_data["x"] = x;
    return weight_grad_values(gy, x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

struct ConvFn : public torch::autograd::Function<ConvFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
    ctx->saved_data["x"] = x;
    return conv_values(x, w, b);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor& gy = grads[0];
    if (!gy.defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    return {at::Tensor(), WeightGradFn::apply(gy, ctx->saved_data["x"].toTensor()), gy.sum({0, 2, 3})};
  }
};

// The weight gradient is linear in gy; its derivative there is the
// convolution of x with the incoming gradient, without a bias.
variable_list WeightGradFn::backward(AutogradContext* ctx, variable_list grads) {
  const at::Tensor& gw = grads[0];
  if (!gw.defined()) return {at::Tensor(), at::Tensor()};
  return {ConvFn::apply(ctx->saved_data["x"].toTensor(), gw, at::zeros({kFilters}, gw.options())), at::Tensor()};
}

bool float_cpu(const at::Tensor& t) { return t.defined() && t.is_cpu() && t.scalar_type() == at::kFloat; }

}  // namespace

bool first_conv_kernel_applies(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return float_cpu(x) && float_cpu(w) && float_cpu(b) && !x.requires_grad() && x.dim() == 4 && w.dim() == 4 &&
         w.size(0) == kFilters && w.size(1) == x.size(1) && w.size(2) == 5 && w.size(3) == 5 && b.numel() == kFilters;
}

at::Tensor first_conv5x5(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return ConvFn::apply(x, w, b);
}

}  // namespace bs
