// train/sharpness: power iteration on Hessian-vector products. Known answers:
// a symmetric matrix with a known top eigenvalue (no model), and a linear
// model with squared loss through the model's double backward, whose Hessian
// is 2 / (N C) [X 1]'[X 1] per output; the stopping rules; and the sum of two
// shards' products equals the whole subset's.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "models/model.h"
#include "train/device_data.h"
#include "train/sharpness.h"

namespace bs {
namespace {

constexpr double kRelTol = 1e-4;

SharpnessSpec spec(int64_t iterations, double tolerance) {
  SharpnessSpec s;
  s.every = 1;
  s.iterations = iterations;
  s.tolerance = tolerance;
  return s;
}

// Q diag(eigen) Q' with a random orthogonal Q, in float64.
at::Tensor symmetric_with(const std::vector<double>& eigen, uint64_t seed) {
  at::manual_seed(seed);
  const auto n = static_cast<int64_t>(eigen.size());
  const at::Tensor q = std::get<0>(at::linalg_qr(at::randn({n, n}, at::kDouble)));
  return q.matmul(at::diag(at::tensor(eigen, at::kDouble))).matmul(q.t());
}

HessianProduct matrix_product(const at::Tensor& a) {
  return [a](const at::Tensor& v) { return a.matmul(v.to(at::kDouble)).to(at::kFloat); };
}

TEST(TopEigenvalue, FindsAKnownTopEigenvalue) {
  std::vector<double> eigen{10.0, 5.0, 4.9, 3.0, 1.0, 0.5, 0.1, 0.0};
  for (int i = 0; i < 56; ++i) eigen.push_back(0.01 * i);
  const at::Tensor a = symmetric_with(eigen, 1);
  const SharpnessResult r = top_eigenvalue(matrix_product(a), sharpness_start(64, 7, at::kCPU), spec(100, 0));
  EXPECT_LE(r.iterations, 100);  // tolerance 0: until the estimate stops changing at all
  EXPECT_LT(std::abs(r.value - 10.0) / 10.0, kRelTol) << r.value;
  std::printf("quadratic: lambda %.9g, relative error %.3g, %d iterations, residual %.3g\n", r.value,
              std::abs(r.value - 10.0) / 10.0, r.iterations, r.residual);
  EXPECT_LT(r.residual, 1e-4);
}

TEST(TopEigenvalue, StopsAtTheToleranceOrTheIterations) {
  const at::Tensor a = symmetric_with({4.0, 2.0, 1.0, 0.5}, 2);
  const SharpnessResult capped = top_eigenvalue(matrix_product(a), sharpness_start(4, 3, at::kCPU), spec(3, 0));
  EXPECT_EQ(capped.iterations, 3);
  const SharpnessResult early = top_eigenvalue(matrix_product(a), sharpness_start(4, 3, at::kCPU), spec(1000, 1e-3));
  EXPECT_GT(early.iterations, 1);
  EXPECT_LT(early.iterations, 1000);
  EXPECT_LT(std::abs(early.value - 4.0) / 4.0, 2e-3);
  // An eigenvector as the start: the first product already gives the value,
  // and the second confirms it.
  const at::Tensor v = std::get<1>(at::linalg_eigh(a)).select(1, 3).to(at::kFloat);
  const SharpnessResult exact = top_eigenvalue(matrix_product(a), v, spec(50, 1e-6));
  EXPECT_EQ(exact.iterations, 2);
  EXPECT_NEAR(exact.value, 4.0, 4e-6);
}

TEST(TopEigenvalue, IsReproducibleFromItsSeed) {
  const at::Tensor a = symmetric_with({3.0, 2.9, 1.0}, 4);
  const SharpnessResult x = top_eigenvalue(matrix_product(a), sharpness_start(3, 11, at::kCPU), spec(5, 0));
  const SharpnessResult y = top_eigenvalue(matrix_product(a), sharpness_start(3, 11, at::kCPU), spec(5, 0));
  EXPECT_EQ(x.value, y.value);
  EXPECT_TRUE(sharpness_start(5, 1, at::kCPU).equal(sharpness_start(5, 1, at::kCPU)));
  EXPECT_FALSE(sharpness_start(5, 1, at::kCPU).equal(sharpness_start(5, 2, at::kCPU)));
}

// A linear model (the mlp without hidden layers) under mse, mean over N
// samples and C outputs: L = 1/(N C) sum |W x + b - y|^2, so per output row
// (w_c, b_c) the Hessian is 2/(N C) [X 1]'[X 1], and the top eigenvalue is
// that matrix's.
struct LinearCase {
  static constexpr int64_t N = 96, D = 6, C = 3;
  ModelSpec spec_;
  std::unique_ptr<Model> model;
  DeviceSplit split;
  at::Tensor params;

  LinearCase() {
    spec_.name = "mlp";
    spec_.hidden = {};
    spec_.loss = "mse";
    model = make_model("test.yaml", spec_, ModelShape{{D}, C}, at::kCPU);
    at::manual_seed(5);
    // Correlated columns with different scales, so the eigenvalues spread.
    split.x = at::randn({N, D}).matmul(at::randn({D, D})) + 0.5;
    split.y = at::randn({N, C});
    const auto init = model->init(9);
    params = at::tensor(init, at::kFloat).set_requires_grad(true);
  }
  double expected() const {
    const at::Tensor xt = at::cat({split.x.to(at::kDouble), at::ones({N, 1}, at::kDouble)}, 1);
    const at::Tensor h = xt.t().matmul(xt) * (2.0 / (N * C));
    return at::linalg_eigvalsh(h).max().item<double>();
  }
  at::Tensor hvp(const at::Tensor& idx, const at::Tensor& v) const {
    return shard_hvp(*model, Objective(spec_), params, split, idx, N, 32, v);
  }
};

TEST(ShardHvp, LinearModelWithSquaredLossHasTheClosedFormTopEigenvalue) {
  const LinearCase c;
  const at::Tensor all = at::arange(LinearCase::N, at::kLong);
  const HessianProduct hvp = [&](const at::Tensor& v) { return c.hvp(all, v); };
  const SharpnessResult r = top_eigenvalue(hvp, sharpness_start(c.model->num_params(), 1, at::kCPU), spec(300, 0));
  const double want = c.expected();
  EXPECT_LT(std::abs(r.value - want) / want, kRelTol) << r.value << " vs " << want;
  std::printf("linear mse: lambda %.9g, closed form %.9g, relative error %.3g, %d iterations\n", r.value, want,
              std::abs(r.value - want) / want, r.iterations);
  EXPECT_LT(r.residual, 1e-3);
}

TEST(ShardHvp, TwoShardsSumToTheWholeSubset) {
  const LinearCase c;
  const at::Tensor all = at::arange(LinearCase::N, at::kLong);
  const at::Tensor v = sharpness_start(c.model->num_params(), 2, at::kCPU);
  const at::Tensor whole = c.hvp(all, v);
  const at::Tensor parts = c.hvp(all.narrow(0, 0, 24), v) + c.hvp(all.narrow(0, 24, 72), v);
  EXPECT_TRUE(at::allclose(whole, parts, 1e-5, 1e-6));
}

}  // namespace
}  // namespace bs
