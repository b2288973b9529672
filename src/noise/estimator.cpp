#include "noise/estimator.h"

#include <cmath>
#include <limits>
#include <numeric>

namespace bs {

double finite_population_factor(double b, int64_t N) {
  if (N <= 0) return 1.0 / b;
  if (N == 1) return 0.0;
  return (static_cast<double>(N) / b - 1.0) / (static_cast<double>(N) - 1.0);
}

GnsEstimator::GnsEstimator(const std::vector<int64_t>& batches, int64_t train_size, double ema_beta) : beta_(ema_beta) {
  double B = 0;
  for (auto b : batches) B += static_cast<double>(b);
  double x_bar = 0;
  for (auto b : batches) {
    weight_.push_back(static_cast<double>(b) / B);
    x_bar += weight_.back() * finite_population_factor(static_cast<double>(b), train_size);
  }
  x_big_ = finite_population_factor(B, train_size);
  denom_ = batches.size() > 1 ? x_bar - x_big_ : 0.0;
}

GnsEstimate GnsEstimator::update(const double* s_local, double S) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (denom_ == 0) return {nan, nan, nan};
  double s_bar = 0;
  for (size_t i = 0; i < weight_.size(); ++i) s_bar += weight_[i] * s_local[i];
  GnsEstimate e;
  e.trsigma = (s_bar - S) / denom_;
  e.g2 = S - e.trsigma * x_big_;
  if (!std::isfinite(e.trsigma) || !std::isfinite(e.g2)) return {e.g2, e.trsigma, nan};
  // Ratio of EMAs, not EMA of ratios: single-step g2 estimates are often near
  // zero or negative, and their ratios are heavy-tailed.
  ema_tr_ = beta_ * ema_tr_ + (1 - beta_) * e.trsigma;
  ema_g2_ = beta_ * ema_g2_ + (1 - beta_) * e.g2;
  beta_pow_ *= beta_;
  const double corr = 1 - beta_pow_;  // bias correction of zero-started EMAs
  e.b_simple = (ema_tr_ / corr) / (ema_g2_ / corr);
  return e;
}

}  // namespace bs
