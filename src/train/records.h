#pragma once
// What the trainer measures, as plain records. The run file and the console
// consume these; neither reaches into the trainer.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace bs {

enum class RunStatus : int32_t { Running = 0, Completed = 1, Diverged = 2, Failed = 3, Preempted = 4 };
const char* status_name(RunStatus s);

struct StepRecord {
  int64_t step = 0;  // 1-based
  int64_t samples = 0;
  int32_t epoch = 0;
  double lr = 0;
  double loss = 0;  // sum_i (B_i/B) loss_i
  std::vector<float> loss_rank;
  double wall_s = 0;
  float step_ms = 0;
  std::vector<float> sqnorm_local;  // per rank, |g_i|^2
  std::vector<float> sqnorm_micro;  // per micro-batch, |g_k|^2 (rank-major)
  float sqnorm_global = 0;
  std::vector<float> layer_micro;   // with gns.per_layer: [n*m*L], micro-major
  std::vector<float> layer_global;  // with gns.per_layer: [L]
  double g2_est = 0, trsigma_est = 0, b_simple = 0;
};

struct EvalRecord {
  int64_t step = 0;
  int64_t samples = 0;
  double epoch = 0;
  double val_loss = 0, val_acc = 0, train_loss = 0, train_acc = 0;
  // eval.sharpness: the top Hessian eigenvalue's estimate, the Hessian-vector
  // products it took and |Hv - lambda v| / |lambda v|; NaN and 0 at
  // evaluations without it.
  double sharpness = std::numeric_limits<double>::quiet_NaN();
  int32_t sharpness_iterations = 0;
  double sharpness_residual = std::numeric_limits<double>::quiet_NaN();
};

}  // namespace bs
