// The CPU squared-norm kernel (src/train/sqnorm.h) against a long double
// reference on gradient-like vectors, its determinism (run to run, thread
// count, instruction set) and which tensors take it.
#include <cmath>
#include <limits>
#include <random>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "train/sqnorm.h"

namespace bs {
namespace {

// Layers of very different scales (1e-7 .. 10), mixed signs, a few large
// entries: what a gradient's P floats look like.
at::Tensor gradient_like(int64_t n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> exponent(-7, 1);
  at::Tensor t = at::empty({n}, at::kFloat);
  float* p = t.data_ptr<float>();
  double scale = 1;
  for (int64_t k = 0; k < n; ++k) {
    if (k % 997 == 0) scale = std::pow(10.0, exponent(gen));
    p[k] = static_cast<float>(normal(gen) * (k % 1013 == 5 ? 300.0 : scale));
  }
  return t;
}

long double reference(const at::Tensor& t) {
  const float* p = t.data_ptr<float>();
  long double s = 0;
  for (int64_t k = 0; k < t.numel(); ++k) s += static_cast<long double>(p[k]) * p[k];
  return s;
}

double rel_err(double v, long double ref) { return static_cast<double>(std::fabs(v - ref) / ref); }

TEST(Sqnorm, AsAccurateAsPowSumAndRoundedOnce) {
  for (const int64_t n : {1000L, 10007L, 100003L, 1000003L, 3274634L, 10000000L}) {
    const at::Tensor g = gradient_like(n, 17 + static_cast<uint64_t>(n));
    const long double ref = reference(g);
    const double sum = sum_squares_blocked(g.data_ptr<float>(), n);
    EXPECT_LT(rel_err(sum, ref), 1e-13) << n;  // float64 sums, before the float result
    const at::Tensor out = cpu_sqnorm(g);
    ASSERT_EQ(out.scalar_type(), at::kFloat);
    ASSERT_EQ(out.sizes(), at::IntArrayRef({1}));
    const double now = out.item<float>();
    const double before = g.pow(2).sum().item<float>();
    EXPECT_LE(rel_err(now, ref), std::ldexp(1.0, -24)) << n;  // half a float ulp
    EXPECT_LE(rel_err(now, ref), rel_err(before, ref) + 1e-12) << n;
  }
}

TEST(Sqnorm, SameBitsRunToRunAndForAnyThreadCount) {
  const at::Tensor g = gradient_like(3 * kSqnormBlock + 12345, 5);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const double one = sum_squares_blocked(g.data_ptr<float>(), g.numel());
  for (const int t : {1, 2, 3, 4}) {
    at::set_num_threads(t);
    for (int rep = 0; rep < 3; ++rep) EXPECT_EQ(sum_squares_blocked(g.data_ptr<float>(), g.numel()), one) << t;
  }
  at::set_num_threads(threads);
}

TEST(Sqnorm, DispatchedKernelMatchesPortableBits) {
  const at::Tensor g = gradient_like(kSqnormBlock + 40, 9);
  const float* p = g.data_ptr<float>();
  for (const int64_t n : {0L, 1L, 15L, 16L, 17L, 31L, 33L, 1000L, kSqnormBlock - 1, kSqnormBlock, kSqnormBlock + 40})
    EXPECT_EQ(sum_squares(p, n), sqnorm_detail::sum_squares_portable(p, n)) << n;
  for (int64_t off = 1; off < 8; ++off)  // unaligned starts
    EXPECT_EQ(sum_squares(p + off, 999), sqnorm_detail::sum_squares_portable(p + off, 999)) << off;
}

TEST(Sqnorm, ExtremesAndNonFinite) {
  at::Tensor g = at::full({100}, std::numeric_limits<float>::max());
  EXPECT_TRUE(std::isinf(cpu_sqnorm(g).item<float>()));  // as pow+sum: above float's range
  EXPECT_EQ(sum_squares_blocked(g.data_ptr<float>(), 100),
            100.0 * static_cast<double>(g[0].item<float>()) * static_cast<double>(g[0].item<float>()));
  g.fill_(std::numeric_limits<float>::denorm_min());
  EXPECT_GT(sum_squares_blocked(g.data_ptr<float>(), 100), 0.0);  // float64 keeps squares float would flush
  g[7] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(cpu_sqnorm(g).item<float>()));
  EXPECT_EQ(cpu_sqnorm(at::zeros({0})).item<float>(), 0.0F);
}

// The copy fused with the norm (the trainer's flat gradient): the buffer gets
// the pieces' floats and the sum has the bits of sum_squares_blocked after the
// copies, for pieces that straddle blocks, end inside one, are tiny, or leave a
// gap (which keeps and counts its values), at any thread count.
TEST(Sqnorm, CopyWithNormIsCopyThenNorm) {
  const int64_t n = 3 * kSqnormBlock + 777;
  const at::Tensor src = gradient_like(n, 23);
  const std::vector<std::pair<int64_t, int64_t>> spans = {
      {0, 5},
      {5, kSqnormBlock - 5},
      {kSqnormBlock + 2, kSqnormBlock + 1},
      {2 * kSqnormBlock + 3, 1},
      {2 * kSqnormBlock + 4, n - 2 * kSqnormBlock - 4}};  // [kSqnormBlock, kSqnormBlock + 2) left out
  std::vector<FlatPiece> pieces;
  for (const auto& [offset, size] : spans) pieces.push_back({src.data_ptr<float>() + offset, offset, size});
  const int threads = at::get_num_threads();
  for (const int t : {1, 3}) {
    at::set_num_threads(t);
    at::Tensor dst = at::full({n}, 0.5F);
    at::Tensor expect = src.clone();
    expect.narrow(0, kSqnormBlock, 2).fill_(0.5F);  // the gap: what dst held
    const double got = copy_sum_squares_blocked(pieces, dst.data_ptr<float>(), n);
    EXPECT_TRUE(at::equal(dst, expect)) << t;
    EXPECT_EQ(got, sum_squares_blocked(expect.data_ptr<float>(), n)) << t;
  }
  at::set_num_threads(threads);
  at::Tensor small = at::zeros({10});
  const at::Tensor ten = gradient_like(10, 3);
  EXPECT_EQ(copy_sum_squares_blocked({{ten.data_ptr<float>(), 0, 10}}, small.data_ptr<float>(), 10),
            sum_squares_blocked(ten.data_ptr<float>(), 10));
  EXPECT_EQ(copy_sum_squares_blocked({}, small.data_ptr<float>(), 0), 0.0);
  EXPECT_EQ(sqnorm_to_float(1e300), std::numeric_limits<float>::infinity());
}

TEST(Sqnorm, WhichTensorsTakeTheKernel) {
  const at::Tensor g = at::ones({64});
  EXPECT_TRUE(sqnorm_kernel_applies(g));
  EXPECT_TRUE(sqnorm_kernel_applies(g.narrow(0, 8, 16)));  // a slot of the flat gradient
  EXPECT_FALSE(sqnorm_kernel_applies(g.view({8, 8}).t()));
  EXPECT_FALSE(sqnorm_kernel_applies(g.to(at::kDouble)));
  EXPECT_FALSE(sqnorm_kernel_applies(g.to(at::kHalf)));
  EXPECT_EQ(cpu_sqnorm(g.narrow(0, 8, 16)).item<float>(), 16.0F);
}

}  // namespace
}  // namespace bs
