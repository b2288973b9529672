#include "models/pool_relu.h"

#include <algorithm>
#include <cstdint>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

// Why a kernel: in the cnn's CPU step (batch 128, 1 thread, ~110 ms) LibTorch's
// max_pool2d, its backward and the relu around them took ~8 ms (perf
// samples); these functions take ~5 ms, one step in A/B runs 1-2 ms faster.
// LibTorch's pool writes an int64 index per output (25.6 MB for the first
// pool at batch 128, twice the output), its backward zeroes the input's
// gradient and then scatters into it, and the relu and its backward are two
// more passes. Here one pass reads the windows and writes the rectified
// maximum and an int32 saying which element it took; the backward writes
// every element of the input's gradient once.
//
// The same function as at::relu(at::max_pool2d(x, 2)), value and gradient:
// - the first maximum of a window in row-major order wins, and a NaN is
//   taken, as LibTorch's max_pool2d chooses;
// - relu passes the gradient where its output is not <= 0 (a NaN passes),
//   as LibTorch's threshold_backward does;
// - windows do not overlap (stride 2), so every input element receives at
//   most one gradient: the scatter is a copy, with no additions to order.
//
// Given which element each window took, the function is linear, y = S x, so
// its derivative is S^T (a scatter) and the derivative of that is S again (a
// gather): the two functions below call each other, which is what the
// double backward of the Hessian-vector products needs.

namespace bs {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Which element of the 2x2 window an output took, 0..3 in row-major order;
// kNone where relu zeroed it, which passes no gradient.
constexpr int32_t kNone = 4;

// Channels-last: element (i, ch, y, x) of an [n, c, h, w] tensor lies at
// ((i * h + y) * w + x) * c + ch.
struct PoolGeometry {
  int64_t n, c, h, w, ho, wo;

  static PoolGeometry of_input(const at::Tensor& x) {
    return {x.size(0), x.size(1), x.size(2), x.size(3), x.size(2) / 2, x.size(3) / 2};
  }
  // The four elements of window (i, oh, ow), in row-major order.
  int64_t window(int64_t i, int64_t oh, int64_t ow, int32_t k) const {
    return ((i * h + 2 * oh + k / 2) * w + 2 * ow + k % 2) * c;
  }
  int64_t output(int64_t i, int64_t oh, int64_t ow) const { return ((i * ho + oh) * wo + ow) * c; }
};

at::Tensor channels_last(const at::Tensor& t) { return t.contiguous(at::MemoryFormat::ChannelsLast); }

at::Tensor empty_channels_last(at::IntArrayRef sizes, const at::TensorOptions& options) {
  return at::empty(sizes, options.memory_format(at::MemoryFormat::ChannelsLast));
}

// The windows' maxima over c channels, rectified, and which element each took.
// Written so that GCC vectorizes the channel loop: selects, not branches, and
// the choice as an int32 beside the float32 values.
void pool_channels(const float* p0, const float* p1, const float* p2, const float* p3, float* y, int32_t* arg,
                   int64_t c) {
  for (int64_t ch = 0; ch < c; ++ch) {
    float m = p0[ch];
    int32_t k = 0;
    const float v1 = p1[ch], v2 = p2[ch], v3 = p3[ch];
    const bool t1 = v1 > m || v1 != v1;
    m = t1 ? v1 : m;
    k = t1 ? 1 : k;
    const bool t2 = v2 > m || v2 != v2;
    m = t2 ? v2 : m;
    k = t2 ? 2 : k;
    const bool t3 = v3 > m || v3 != v3;
    m = t3 ? v3 : m;
    k = t3 ? 3 : k;
    const bool pass = !(m <= 0.f);
    y[ch] = pass ? m : 0.f;
    arg[ch] = pass ? k : kNone;
  }
}

// For each (image, output row), the windows along it: fn(i, oh).
template <typename Fn>
void for_output_rows(const PoolGeometry& g, const Fn& fn) {
  at::parallel_for(0, g.n * g.ho, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) fn(r / g.ho, r % g.ho);
  });
}

// y = relu(max_pool2d(x, 2)) and the element each output took.
std::pair<at::Tensor, at::Tensor> pool_values(const at::Tensor& x_any) {
  const at::Tensor x = channels_last(x_any);
  const PoolGeometry g = PoolGeometry::of_input(x);
  at::Tensor y = empty_channels_last({g.n, g.c, g.ho, g.wo}, x.options());
  at::Tensor arg = empty_channels_last({g.n, g.c, g.ho, g.wo}, x.options().dtype(at::kInt));
  const float* src = x.data_ptr<float>();
  float* out = y.data_ptr<float>();
  int32_t* which = arg.data_ptr<int32_t>();
  for_output_rows(g, [&](int64_t i, int64_t oh) {
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      pool_channels(src + g.window(i, oh, ow, 0), src + g.window(i, oh, ow, 1), src + g.window(i, oh, ow, 2),
                    src + g.window(i, oh, ow, 3), out + g.output(i, oh, ow), which + g.output(i, oh, ow), g.c);
    }
  });
  return {y, arg};
}

// S v: each output takes the element its window took (0 where none).
at::Tensor gather_values(const at::Tensor& v_any, const at::Tensor& arg) {
  const at::Tensor v = channels_last(v_any);
  const PoolGeometry g = PoolGeometry::of_input(v);
  at::Tensor y = empty_channels_last({g.n, g.c, g.ho, g.wo}, v.options());
  const float* src = v.data_ptr<float>();
  const int32_t* which = arg.data_ptr<int32_t>();
  float* out = y.data_ptr<float>();
  for_output_rows(g, [&](int64_t i, int64_t oh) {
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      const int64_t o = g.output(i, oh, ow);
      for (int64_t ch = 0; ch < g.c; ++ch) {
        const int32_t k = which[o + ch];
        out[o + ch] = k == kNone ? 0.f : src[g.window(i, oh, ow, k) + ch];
      }
    }
  });
  return y;
}

// S^T gy: every element of the [n, c, h, w] input gets its window's gradient
// if the window took it, else 0 (the rows and columns the pool's floor
// dropped included).
at::Tensor scatter_values(const at::Tensor& gy_any, const at::Tensor& arg, int64_t h, int64_t w) {
  const at::Tensor gy = channels_last(gy_any);
  const PoolGeometry g{gy.size(0), gy.size(1), h, w, gy.size(2), gy.size(3)};
  at::Tensor gx = empty_channels_last({g.n, g.c, h, w}, gy.options());
  const float* src = gy.data_ptr<float>();
  const int32_t* which = arg.data_ptr<int32_t>();
  float* out = gx.data_ptr<float>();
  at::parallel_for(0, g.n * h, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t i = r / h, iy = r % h, oh = iy / 2;
      float* row = out + r * w * g.c;
      for (int64_t ix = 0; ix < w; ++ix, row += g.c) {
        const int64_t ow = ix / 2;
        if (oh >= g.ho || ow >= g.wo) {
          std::fill_n(row, g.c, 0.f);
          continue;
        }
        const int32_t pos = static_cast<int32_t>(iy % 2 * 2 + ix % 2);
        const int64_t o = g.output(i, oh, ow);
        const float* grad = src + o;
        const int32_t* took = which + o;
        for (int64_t ch = 0; ch < g.c; ++ch) {
          const float v = grad[ch];  // read either way, so the loop has no branch and vectorizes
          row[ch] = took[ch] == pos ? v : 0.f;
        }
      }
    }
  });
  return gx;
}

struct ScatterFn : public torch::autograd::Function<ScatterFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gy, const at::Tensor& arg, int64_t h, int64_t w) {
    ctx->saved_data["arg"] = arg;
    return scatter_values(gy, arg, h, w);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

struct GatherFn : public torch::autograd::Function<GatherFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& v, const at::Tensor& arg) {
    ctx->saved_data["arg"] = arg;
    ctx->saved_data["h"] = v.size(2);
    ctx->saved_data["w"] = v.size(3);
    return gather_values(v, arg);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads);
};

// The derivative of a gather (the pool, given its choices): the scatter.
at::Tensor scatter_grad(AutogradContext* ctx, const at::Tensor& grad) {
  if (!grad.defined()) return {};
  return ScatterFn::apply(grad, ctx->saved_data["arg"].toTensor(), ctx->saved_data["h"].toInt(),
                          ctx->saved_data["w"].toInt());
}

variable_list GatherFn::backward(AutogradContext* ctx, variable_list grads) {
  return {scatter_grad(ctx, grads[0]), at::Tensor()};
}

variable_list ScatterFn::backward(AutogradContext* ctx, variable_list grads) {
  const at::Tensor g = grads[0].defined() ? GatherFn::apply(grads[0], ctx->saved_data["arg"].toTensor()) : at::Tensor();
  return {g, at::Tensor(), at::Tensor(), at::Tensor()};
}

// GatherFn with the choices made in the same pass as the values.
struct PoolReluFn : public torch::autograd::Function<PoolReluFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) {
    auto [y, arg] = pool_values(x);
    ctx->saved_data["arg"] = arg;
    ctx->saved_data["h"] = x.size(2);
    ctx->saved_data["w"] = x.size(3);
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) { return {scatter_grad(ctx, grads[0])}; }
};

}  // namespace

bool pool_relu_kernel_applies(const at::Tensor& x) {
  return x.dim() == 4 && x.is_cpu() && x.scalar_type() == at::kFloat && x.size(2) >= 2 && x.size(3) >= 2 &&
         x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

at::Tensor max_pool2_relu(const at::Tensor& x) { return PoolReluFn::apply(x); }

}  // namespace bs
