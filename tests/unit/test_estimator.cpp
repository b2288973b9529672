// Gradient-noise-scale estimators (DESIGN.md "Gradient noise scale").
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "config/study.h"
#include "data/batch_plan.h"
#include "noise/estimator.h"
#include "util/rng.h"

namespace bs {
namespace {

void expect_rel(double got, double want, double rel) {
  EXPECT_NEAR(got, want, rel * std::fabs(want)) << "got " << got << ", want " << want;
}

TEST(FinitePopulationFactor, InfiniteNIsOneOverB) {
  EXPECT_DOUBLE_EQ(finite_population_factor(8, 0), 1.0 / 8);
  EXPECT_DOUBLE_EQ(finite_population_factor(1, 0), 1.0);
  EXPECT_DOUBLE_EQ(finite_population_factor(1000, -1), 1.0 / 1000);
}

TEST(FinitePopulationFactor, EdgeValues) {
  EXPECT_DOUBLE_EQ(finite_population_factor(60000, 60000), 0.0);  // the whole set: no noise
  EXPECT_DOUBLE_EQ(finite_population_factor(17, 17), 0.0);
  EXPECT_DOUBLE_EQ(finite_population_factor(1, 60000), 1.0);  // one sample: full variance
  EXPECT_DOUBLE_EQ(finite_population_factor(1, 2), 1.0);
}

TEST(FinitePopulationFactor, MatchesFormulaAndApproachesOneOverB) {
  const int64_t N = 60000;
  EXPECT_DOUBLE_EQ(finite_population_factor(8192, N), (60000.0 / 8192 - 1) / 59999.0);
  // At B = 8192 of 60000 the correction is about 14 % (DESIGN.md).
  EXPECT_NEAR(finite_population_factor(8192, N) * 8192, 0.8635, 1e-3);
  // b << N: close to 1/b.
  expect_rel(finite_population_factor(32, N), 1.0 / 32, 1e-3);
}

// s_i and S exactly at their expectations under E|g_b|^2 = G2 + tr x(b).
struct Exact {
  std::vector<double> s;
  double S;
};
Exact exact_norms(const std::vector<int64_t>& batches, int64_t N, double G2, double tr) {
  Exact e;
  int64_t B = 0;
  for (auto b : batches) {
    e.s.push_back(G2 + tr * finite_population_factor(static_cast<double>(b), N));
    B += b;
  }
  e.S = G2 + tr * finite_population_factor(static_cast<double>(B), N);
  return e;
}

TEST(GnsEstimator, RecoversExactValues) {
  const double G2 = 2.5, tr = 40.0;
  const std::vector<std::vector<int64_t>> cases{{32, 32, 32, 32}, {64, 64}, {8, 24, 96}, {1, 1000}, {16, 48}};
  for (int64_t N : {int64_t{0}, int64_t{60000}, int64_t{5000}}) {
    for (const auto& batches : cases) {
      SCOPED_TRACE("N=" + std::to_string(N) + " n=" + std::to_string(batches.size()) +
                   " B0=" + std::to_string(batches[0]));
      GnsEstimator est(batches, N, 0.9);
      ASSERT_TRUE(est.defined());
      Exact x = exact_norms(batches, N, G2, tr);
      GnsEstimate e = est.update(x.s.data(), x.S);
      expect_rel(e.g2, G2, 1e-9);
      expect_rel(e.trsigma, tr, 1e-9);
      expect_rel(e.b_simple, tr / G2, 1e-9);
    }
  }
}

TEST(GnsEstimator, WeightsSmallBatchNormsBySampleShare) {
  // Arbitrary (not expected-value) norms: the estimates follow the DESIGN.md
  // formulas with s_bar = sum_i (B_i/B) s_i, not the plain mean of s_i.
  const std::vector<int64_t> batches{8, 24, 96};
  const int64_t N = 60000;
  const double s[3] = {9.0, 4.0, 1.5};
  const double S = 1.1;
  GnsEstimator est(batches, N, 0.5);
  GnsEstimate e = est.update(s, S);
  const double B = 128;
  const double s_bar = (8 * 9.0 + 24 * 4.0 + 96 * 1.5) / B;
  const double x_bar = (8 * finite_population_factor(8, N) + 24 * finite_population_factor(24, N) +
                        96 * finite_population_factor(96, N)) /
                       B;
  const double tr = (s_bar - S) / (x_bar - finite_population_factor(B, N));
  expect_rel(e.trsigma, tr, 1e-12);
  expect_rel(e.g2, S - tr * finite_population_factor(B, N), 1e-12);
  // Infinite N: the closed forms with B_small = B/n, B_big = B.
  GnsEstimator inf(batches, 0, 0.5);
  GnsEstimate ei = inf.update(s, S);
  const double b_small = B / 3, b_big = B;
  expect_rel(ei.g2, (b_big * S - b_small * s_bar) / (b_big - b_small), 1e-12);
  expect_rel(ei.trsigma, (s_bar - S) / (1 / b_small - 1 / b_big), 1e-12);
}

TEST(GnsEstimator, FiniteNMatters) {
  // With N finite, x_bar - x(B) = N/(N-1) (n-1)/B whatever the split, so an
  // estimator that assumed infinite N gets tr(Sigma) almost right but |G|^2
  // low by tr(Sigma)/(N-1): late in training (small |G|^2) that is large.
  const std::vector<int64_t> batches{1024, 2048, 2048, 3072};
  const int64_t N = 60000;
  const double G2 = 0.01, tr = 300.0;
  Exact x = exact_norms(batches, N, G2, tr);
  GnsEstimator right(batches, N, 0.9), wrong(batches, 0, 0.9);
  GnsEstimate r = right.update(x.s.data(), x.S);
  GnsEstimate w = wrong.update(x.s.data(), x.S);
  expect_rel(r.trsigma, tr, 1e-9);
  expect_rel(r.g2, G2, 1e-9);
  expect_rel(w.trsigma, tr * N / (N - 1.0), 1e-9);
  expect_rel(w.g2, G2 - tr / (N - 1.0), 1e-6);
  EXPECT_GT(std::fabs(w.g2 - G2) / G2, 0.3);
}

TEST(GnsEstimator, OneRankIsUndefined) {
  GnsEstimator est({64}, 60000, 0.9);
  EXPECT_FALSE(est.defined());
  double s = 1.0;
  GnsEstimate e = est.update(&s, 1.0);
  EXPECT_TRUE(std::isnan(e.g2));
  EXPECT_TRUE(std::isnan(e.trsigma));
  EXPECT_TRUE(std::isnan(e.b_simple));
}

TEST(GnsEstimator, BSimpleIsRatioOfEmas) {
  const std::vector<int64_t> batches{16, 48};
  const int64_t N = 0;
  const double beta = 0.9;
  GnsEstimator est(batches, N, beta);
  // Three steps with different (|G|^2, tr) truths; each step's estimates are
  // then exactly those truths.
  const double g2[3] = {1.0, 0.1, 2.0};
  const double tr[3] = {10.0, 30.0, 5.0};
  GnsEstimate e{};
  for (int k = 0; k < 3; ++k) {
    Exact x = exact_norms(batches, N, g2[k], tr[k]);
    e = est.update(x.s.data(), x.S);
    expect_rel(e.g2, g2[k], 1e-9);
    expect_rel(e.trsigma, tr[k], 1e-9);
  }
  // Zero-started EMAs (the bias correction cancels in the ratio).
  double ema_tr = 0, ema_g2 = 0;
  for (int k = 0; k < 3; ++k) {
    ema_tr = beta * ema_tr + (1 - beta) * tr[k];
    ema_g2 = beta * ema_g2 + (1 - beta) * g2[k];
  }
  const double want = ema_tr / ema_g2;  // = (0.081*10 + 0.09*30 + 0.1*5) / (0.081*1 + 0.09*0.1 + 0.1*2)
  EXPECT_NEAR(want, 4.01 / 0.29, 1e-12);
  expect_rel(e.b_simple, want, 1e-9);
  // ...and not the EMA of the per-step ratios.
  double ema_ratio = 0;
  for (int k = 0; k < 3; ++k) ema_ratio = beta * ema_ratio + (1 - beta) * (tr[k] / g2[k]);
  ema_ratio /= 1 - beta * beta * beta;
  EXPECT_GT(std::fabs(e.b_simple - ema_ratio), 10.0);
}

// Synthetic model: a mean gradient over b samples is g_b = G + sigma z / sqrt(b),
// z standard normal in d dimensions, so |G|^2 and tr(Sigma) = d sigma^2 are known
// and E|g_b|^2 = |G|^2 + tr(Sigma) / b (infinite N). The global gradient is the
// sample-weighted mean of the rank gradients, as in the trainer.
TEST(GnsEstimator, MonteCarloUnbiasedInfiniteN) {
  const int d = 50;
  const double sigma2 = 0.5;
  const double true_tr = d * sigma2;  // 25
  std::vector<double> G(d, std::sqrt(1.0 / d));
  const double true_g2 = 1.0;
  const std::vector<int64_t> batches{8, 24, 96};
  const double B = 128;
  const int steps = 20000;

  Rng rng(12345);
  GnsEstimator est(batches, 0, 0.999);
  double sum_g2 = 0, sum_tr = 0, sq_g2 = 0, sq_tr = 0;
  GnsEstimate last{};
  std::vector<double> Gh(d);
  std::vector<double> s(batches.size());
  for (int t = 0; t < steps; ++t) {
    std::fill(Gh.begin(), Gh.end(), 0.0);
    for (size_t i = 0; i < batches.size(); ++i) {
      const double sd = std::sqrt(sigma2 / batches[i]);
      const double w = batches[i] / B;
      double norm2 = 0;
      for (int j = 0; j < d; ++j) {
        const double gij = G[j] + sd * rng.normal();
        norm2 += gij * gij;
        Gh[j] += w * gij;
      }
      s[i] = norm2;
    }
    double S = 0;
    for (int j = 0; j < d; ++j) S += Gh[j] * Gh[j];
    last = est.update(s.data(), S);
    sum_g2 += last.g2;
    sum_tr += last.trsigma;
    sq_g2 += last.g2 * last.g2;
    sq_tr += last.trsigma * last.trsigma;
  }
  const double mean_g2 = sum_g2 / steps, mean_tr = sum_tr / steps;
  const double se_g2 = std::sqrt((sq_g2 / steps - mean_g2 * mean_g2) / steps);
  const double se_tr = std::sqrt((sq_tr / steps - mean_tr * mean_tr) / steps);
  RecordProperty("mean_g2", std::to_string(mean_g2) + " +- " + std::to_string(se_g2));
  RecordProperty("mean_trsigma", std::to_string(mean_tr) + " +- " + std::to_string(se_tr));
  RecordProperty("b_simple", std::to_string(last.b_simple));
  // Stated tolerance: within 3 % of the truth, and within 5 standard errors.
  EXPECT_NEAR(mean_g2, true_g2, 0.03 * true_g2) << "se " << se_g2;
  EXPECT_NEAR(mean_tr, true_tr, 0.03 * true_tr) << "se " << se_tr;
  EXPECT_LT(std::fabs(mean_g2 - true_g2), 5 * se_g2);
  EXPECT_LT(std::fabs(mean_tr - true_tr), 5 * se_tr);
  // The standard errors are small enough for the 3 % bound to mean something.
  EXPECT_LT(5 * se_tr, 0.03 * true_tr);
  EXPECT_LT(5 * se_g2, 0.03 * true_g2);
  // B_simple (ratio of EMAs over ~1000 steps) lands near tr / |G|^2 = 25.
  EXPECT_NEAR(last.b_simple, true_tr / true_g2, 0.1 * true_tr / true_g2);
}

// Finite population: N per-sample gradients, batches drawn without replacement
// from one shared permutation per step (as the batch plan does). Then
// E|g_b|^2 = |G|^2 + tr(Sigma) x(b) with Sigma the population covariance
// (divisor N), and only the estimator told N is unbiased.
TEST(GnsEstimator, MonteCarloUnbiasedFiniteN) {
  const int d = 4;
  const int64_t N = 240;
  const std::vector<int64_t> batches{8, 24, 96};  // B = 128, more than half of N
  Rng rng(777);
  std::vector<std::vector<double>> pop(N, std::vector<double>(d));
  for (auto& v : pop)
    for (int j = 0; j < d; ++j) v[j] = 0.1 * (j + 1) + 2.0 * rng.normal();
  // Recentre so that G = (0.1, 0.2, 0.3, 0.4) and |G|^2 = 0.3.
  std::vector<double> G(d, 0.0);
  for (const auto& v : pop)
    for (int j = 0; j < d; ++j) G[j] += v[j] / N;
  for (auto& v : pop)
    for (int j = 0; j < d; ++j) v[j] += 0.1 * (j + 1) - G[j];
  std::fill(G.begin(), G.end(), 0.0);
  for (const auto& v : pop)
    for (int j = 0; j < d; ++j) G[j] += v[j] / N;
  double true_g2 = 0, true_tr = 0;
  for (int j = 0; j < d; ++j) true_g2 += G[j] * G[j];
  for (const auto& v : pop)
    for (int j = 0; j < d; ++j) true_tr += (v[j] - G[j]) * (v[j] - G[j]) / N;

  GnsEstimator with_n(batches, N, 0.99), without_n(batches, 0, 0.99);
  const int steps = 20000;
  double sum_tr = 0, sum_g2 = 0, sq_tr = 0, sq_g2 = 0, sum_g2_inf = 0;
  std::vector<double> s(batches.size()), Gh(d);
  for (int t = 0; t < steps; ++t) {
    auto perm = permutation(N, static_cast<uint64_t>(t) + 1);
    std::fill(Gh.begin(), Gh.end(), 0.0);
    int64_t off = 0;
    for (size_t i = 0; i < batches.size(); ++i) {
      std::vector<double> gi(d, 0.0);
      for (int64_t k = 0; k < batches[i]; ++k)
        for (int j = 0; j < d; ++j) gi[j] += pop[perm[off + k]][j] / batches[i];
      off += batches[i];
      s[i] = 0;
      for (int j = 0; j < d; ++j) {
        s[i] += gi[j] * gi[j];
        Gh[j] += gi[j] * batches[i] / 128.0;
      }
    }
    double S = 0;
    for (int j = 0; j < d; ++j) S += Gh[j] * Gh[j];
    GnsEstimate e = with_n.update(s.data(), S);
    sum_tr += e.trsigma;
    sum_g2 += e.g2;
    sq_tr += e.trsigma * e.trsigma;
    sq_g2 += e.g2 * e.g2;
    sum_g2_inf += without_n.update(s.data(), S).g2;
  }
  const double mean_tr = sum_tr / steps, mean_g2 = sum_g2 / steps, mean_g2_inf = sum_g2_inf / steps;
  const double se_tr = std::sqrt((sq_tr / steps - mean_tr * mean_tr) / steps);
  const double se_g2 = std::sqrt((sq_g2 / steps - mean_g2 * mean_g2) / steps);
  RecordProperty("true_g2", std::to_string(true_g2));
  RecordProperty("true_trsigma", std::to_string(true_tr));
  RecordProperty("mean_g2", std::to_string(mean_g2) + " +- " + std::to_string(se_g2));
  RecordProperty("mean_trsigma", std::to_string(mean_tr) + " +- " + std::to_string(se_tr));
  RecordProperty("mean_g2_ignoring_N", std::to_string(mean_g2_inf));
  // Stated tolerance: within 3 % (tr) and 5 % (|G|^2) of the truth, and within 5 standard errors.
  EXPECT_NEAR(mean_tr, true_tr, 0.03 * true_tr) << "se " << se_tr;
  EXPECT_NEAR(mean_g2, true_g2, 0.05 * true_g2) << "se " << se_g2;
  EXPECT_LT(std::fabs(mean_tr - true_tr), 5 * se_tr);
  EXPECT_LT(std::fabs(mean_g2 - true_g2), 5 * se_g2);
  // Ignoring N biases |G|^2 low by tr(Sigma)/(N-1), well outside the noise.
  EXPECT_NEAR(mean_g2_inf, true_g2 - true_tr / (N - 1), 5 * se_g2);
  EXPECT_LT(mean_g2_inf, true_g2 - 0.1 * true_g2);
}

// ---------------------------------------------------------------- EMA in samples

// B_simple after `samples` training samples at global batch B: exact norms,
// |G|^2 = 0.4 for the first 8192 samples and 0.1 after, tr(Sigma) = 40.
double b_simple_after(int64_t B, double beta, int64_t samples) {
  GnsEstimator est({B / 2, B / 2}, 0, beta);
  const Exact early = exact_norms({B / 2, B / 2}, 0, 0.4, 40.0), late = exact_norms({B / 2, B / 2}, 0, 0.1, 40.0);
  double b = 0;
  for (int64_t seen = B; seen <= samples; seen += B) {
    const Exact& e = seen <= 8192 ? early : late;
    b = est.update(e.s.data(), e.S).b_simple;
  }
  return b;
}

TEST(GnsEmaSamples, SameSamplesGiveTheSameBSimpleAtEveryBatch) {
  GnsSpec g;
  g.ema_samples = 4096;
  // The bias-corrected EMAs weigh a sample seen s samples ago by exp(-s / W)
  // whatever the batch, so at equal samples they agree exactly.
  const double e1 = std::exp(-1.0), e3 = std::exp(-3.0);
  const double g2 = (0.1 * (1 - e1) + 0.4 * (e1 - e3)) / (1 - e3);
  for (int64_t B : {32, 128, 512}) expect_rel(b_simple_after(B, g.step_beta(B), 12288), 40.0 / g2, 1e-9);
  // An EMA counted in steps remembers 16 times more samples at B = 512 than
  // at B = 32: the large batch still reports mostly early training.
  const double small = b_simple_after(32, 0.99, 12288), large = b_simple_after(512, 0.99, 12288);
  EXPECT_GT(small / large, 1.5) << small << " vs " << large;
}

}  // namespace
}  // namespace bs

// Known answers from a problem with closed-form gradient statistics: linear
// regression y = w*.x + e, x ~ N(0, I_d), e ~ N(0, s2), squared loss / 2, at
// fixed parameters w = w* + r. The per-sample gradient is g = (r.x - e) x, so
//   G = E g = r,   E g g^T = |r|^2 I + 2 r r^T + s2 I,
//   |G|^2 = |r|^2,  tr(Sigma) = (d + 1) |r|^2 + d s2.
// Batches are cut exactly as the trainer cuts them: a BatchPlan over a finite
// training set of N samples (without replacement), each rank's slice split
// into micro-batches by micro_batches(); then the population statistics (with
// divisor N) are the truth, and the finite-population factor must be used.
namespace linreg {

struct Problem {
  int d = 16;
  int64_t N = 4096;
  std::vector<std::vector<double>> g;  // per-sample gradients
  double g2 = 0, trsigma = 0;          // population truth
};

Problem make(uint64_t seed, double r_scale = 0.25) {
  Problem p;
  bs::Rng rng(seed);
  std::vector<double> r(static_cast<size_t>(p.d));
  for (auto& v : r) v = r_scale * rng.normal();
  const double s2 = 0.5;
  std::vector<double> mean(static_cast<size_t>(p.d), 0.0);
  for (int64_t n = 0; n < p.N; ++n) {
    std::vector<double> x(static_cast<size_t>(p.d));
    double rx = 0;
    for (int k = 0; k < p.d; ++k) {
      x[static_cast<size_t>(k)] = rng.normal();
      rx += r[static_cast<size_t>(k)] * x[static_cast<size_t>(k)];
    }
    const double e = std::sqrt(s2) * rng.normal();
    std::vector<double> gn(static_cast<size_t>(p.d));
    for (int k = 0; k < p.d; ++k) {
      gn[static_cast<size_t>(k)] = (rx - e) * x[static_cast<size_t>(k)];
      mean[static_cast<size_t>(k)] += gn[static_cast<size_t>(k)] / static_cast<double>(p.N);
    }
    p.g.push_back(std::move(gn));
  }
  // The finite training set's own statistics are the truth for sampling from
  // it; they are close to the closed form, which the test also checks.
  for (double v : mean) p.g2 += v * v;
  for (const auto& gn : p.g)
    for (int k = 0; k < p.d; ++k) {
      const double c = gn[static_cast<size_t>(k)] - mean[static_cast<size_t>(k)];
      p.trsigma += c * c / static_cast<double>(p.N);
    }
  double r2 = 0;
  for (double v : r) r2 += v * v;
  EXPECT_NEAR(p.g2, r2, 0.15 * r2 + 0.03) << "sample of N draws vs closed form |r|^2";
  EXPECT_NEAR(p.trsigma, (p.d + 1) * r2 + p.d * s2, 0.08 * ((p.d + 1) * r2 + p.d * s2));
  return p;
}

double sqnorm_of_mean(const Problem& p, const std::vector<int64_t>& perm, int64_t from, int64_t len) {
  std::vector<double> m(static_cast<size_t>(p.d), 0.0);
  for (int64_t i = from; i < from + len; ++i)
    for (int k = 0; k < p.d; ++k)
      m[static_cast<size_t>(k)] += p.g[static_cast<size_t>(perm[static_cast<size_t>(i)])][static_cast<size_t>(k)];
  double s = 0;
  for (double v : m) s += (v / static_cast<double>(len)) * (v / static_cast<double>(len));
  return s;
}

struct Recovered {
  double g2, trsigma, se_g2, se_tr, b_simple;
  double naive_g2, naive_se_g2;  // an estimator that assumes sampling with replacement
};

// Trains nothing: walks `epochs` epochs of the batch plan and feeds the
// estimator the norms the trainer would measure.
Recovered run(const Problem& p, const std::vector<int64_t>& batch, int64_t m, int epochs) {
  bs::BatchPlan plan(p.N, batch, 11, 3);
  const auto micro = bs::micro_batches(batch, m);
  bs::GnsEstimator est(micro, p.N, 0.99);
  bs::GnsEstimator naive(micro, 0, 0.99);
  std::vector<double> g2s, trs, naive_g2s;
  double b_simple = 0;
  for (int64_t step = 0; step < epochs * plan.steps_per_epoch(); ++step) {
    const auto perm = plan.epoch_permutation(plan.epoch_of(step));
    std::vector<double> s;
    for (int i = 0; i < static_cast<int>(batch.size()); ++i) {
      int64_t off = plan.offset(step, i);
      for (int64_t j = 0; j < m; ++j) {
        const int64_t b = micro[static_cast<size_t>(i * m + j)];
        s.push_back(sqnorm_of_mean(p, perm, off, b));
        off += b;
      }
    }
    const double S = sqnorm_of_mean(p, perm, plan.offset(step, 0), plan.global_batch());
    auto e = est.update(s.data(), S);
    naive_g2s.push_back(naive.update(s.data(), S).g2);
    g2s.push_back(e.g2);
    trs.push_back(e.trsigma);
    b_simple = e.b_simple;
  }
  auto mean_se = [](const std::vector<double>& v) {
    double mu = 0, var = 0;
    for (double x : v) mu += x / static_cast<double>(v.size());
    for (double x : v) var += (x - mu) * (x - mu) / static_cast<double>(v.size() - 1);
    return std::make_pair(mu, std::sqrt(var / static_cast<double>(v.size())));
  };
  auto [g2, se_g2] = mean_se(g2s);
  auto [tr, se_tr] = mean_se(trs);
  auto [ng2, se_ng2] = mean_se(naive_g2s);
  return {g2, tr, se_g2, se_tr, b_simple, ng2, se_ng2};
}

// Tolerance: the mean over all steps must lie within 4 standard errors of the
// truth (a 6e-5 chance per check under the estimator's own noise), and within
// 10 % for tr(Sigma) and 25 % for |G|^2 (the harder quantity: it is a small
// difference of large numbers).
void expect_recovers(const Problem& p, const Recovered& r, const char* what) {
  SCOPED_TRACE(what);
  std::printf("%s: |G|^2 %.4f +- %.4f (truth %.4f), tr(Sigma) %.3f +- %.3f (truth %.3f), B_simple %.1f (truth %.1f)\n",
              what, r.g2, r.se_g2, p.g2, r.trsigma, r.se_tr, p.trsigma, r.b_simple, p.trsigma / p.g2);
  EXPECT_NEAR(r.g2, p.g2, 4 * r.se_g2);
  EXPECT_NEAR(r.trsigma, p.trsigma, 4 * r.se_tr);
  EXPECT_NEAR(r.g2, p.g2, 0.25 * p.g2);
  EXPECT_NEAR(r.trsigma, p.trsigma, 0.10 * p.trsigma);
}

}  // namespace linreg

TEST(KnownAnswers, LinearRegressionEqualRankBatches) {
  auto p = linreg::make(101);
  linreg::expect_recovers(p, linreg::run(p, {32, 32, 32, 32}, 1, 60), "equal [32,32,32,32]");
}

TEST(KnownAnswers, LinearRegressionUnequalRankBatches) {
  auto p = linreg::make(102);
  linreg::expect_recovers(p, linreg::run(p, {8, 24, 96}, 1, 60), "unequal [8,24,96]");
}

TEST(KnownAnswers, LinearRegressionMicroBatchesOnOneRank) {
  auto p = linreg::make(103);
  linreg::expect_recovers(p, linreg::run(p, {128}, 4, 60), "one rank, 4 micro-batches");
}

TEST(KnownAnswers, LinearRegressionMicroBatchesOnUnequalRanks) {
  auto p = linreg::make(104);
  linreg::expect_recovers(p, linreg::run(p, {8, 24, 96}, 2, 60), "[8,24,96] x 2 micro-batches");
}

TEST(KnownAnswers, IgnoringTheFinitePopulationIsBiasedAtLargeBatches) {
  // At B = 2048 of N = 4096, x(B) is half of 1/B. With the noise scale near B
  // (small |G|^2), an estimator that assumed sampling with replacement would
  // misjudge |G|^2 (measured: 14 % low, ~20 standard errors); ours must not. Guards the correction.
  auto p = linreg::make(105, 0.03);
  auto r = linreg::run(p, {1024, 1024}, 1, 400);
  linreg::expect_recovers(p, r, "large batch [1024,1024] of N=4096");
  std::printf("  naive |G|^2 %.4f +- %.4f\n", r.naive_g2, r.naive_se_g2);
  EXPECT_GT(std::abs(r.naive_g2 - p.g2), 8 * r.naive_se_g2);
  EXPECT_GT(std::abs(r.naive_g2 - p.g2), 0.1 * p.g2);  // measured: 14 % low
}
