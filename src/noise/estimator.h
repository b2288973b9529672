#pragma once
// Gradient-noise estimators from one step's per-rank and global squared norms
// (docs/metrics.md). Pure arithmetic on host doubles: the trainer hands over
// the numbers it copied from the device at a log interval.
#include <cstdint>
#include <vector>

namespace bs {

// E|g_b|^2 = |G|^2 + tr(Sigma) x(b) for a mean over b samples drawn without
// replacement from N; x(b) = (N/b - 1)/(N - 1), and 1/b when N <= 0 (infinite).
double finite_population_factor(double b, int64_t N);

struct GnsEstimate {
  double g2 = 0;        // |G|^2 estimate
  double trsigma = 0;   // tr(Sigma) estimate
  double b_simple = 0;  // EMA(trsigma) / EMA(g2)
};

class GnsEstimator {
 public:
  // batches: B_i of the n "small" batches (ranks, or ranks x micro-batches).
  GnsEstimator(const std::vector<int64_t>& batches, int64_t train_size, double ema_beta);

  // Estimates from s_i = |g_i|^2 (n values) and S = |G|^2. All NaN when n == 1,
  // where the two batch sizes coincide and nothing can be separated.
  GnsEstimate update(const double* s_local, double S);
  bool defined() const { return denom_ != 0; }

  // EMA state, for checkpoints.
  void state(double& ema_tr, double& ema_g2, double& beta_pow) const {
    ema_tr = ema_tr_;
    ema_g2 = ema_g2_;
    beta_pow = beta_pow_;
  }
  void restore(double ema_tr, double ema_g2, double beta_pow) {
    ema_tr_ = ema_tr;
    ema_g2_ = ema_g2;
    beta_pow_ = beta_pow;
  }

 private:
  std::vector<double> weight_;  // B_i / B
  double x_big_ = 0, denom_ = 0;
  double beta_;
  double ema_tr_ = 0, ema_g2_ = 0, beta_pow_ = 1;
};

}  // namespace bs
