#pragma once
// SGD (momentum, nesterov, weight decay) and Adam over the flat parameter
// buffer. Our own rather than torch::optim: LibTorch's optimizers bake the lr
// into each launch as a double; here it lives in a device tensor, so a schedule
// can change it without re-capturing a CUDA graph, and one fused update covers
// the whole model.
#include <vector>

#include <ATen/ATen.h>

#include "config/study.h"

namespace bs {

class FlatOptimizer {
 public:
  FlatOptimizer(const OptimizerSpec& spec, const at::Tensor& params);
  // params -= lr * direction(grad); must run under NoGradGuard. The same as
  // prepare(lr) then apply(params, grad): a CUDA graph captures apply, and
  // prepare runs before each replay.
  void step(at::Tensor& params, const at::Tensor& grad, double lr);
  void prepare(double lr);  // counts the step; the lr and Adam's corrections into device scalars
  void apply(at::Tensor& params, const at::Tensor& grad);
  // step() for SGD on CPU float32 buffers,
  // in one pass over them (train/fused_sgd.h), with |grad|^2 into *sqnorm
  // when given (sum_squares_blocked's bits). False, having done nothing,
  // where it does not apply.
  bool fused_step(at::Tensor& params, const at::Tensor& grad, double lr, double* sqnorm);

  // State for checkpoints: the step count and the buffers (momentum, or
  // Adam's m and v), in a fixed order.
  int64_t steps() const { return t_; }
  std::vector<at::Tensor> buffers() const;
  void restore(int64_t steps, const std::vector<at::Tensor>& buffers);

 private:
  OptimizerSpec spec_;
  at::Tensor neg_lr_;       // [1], on the parameters' device: -lr (Adam: -lr / (1 - beta1^t))
  at::Tensor bc2_;          // [1]: Adam's 1 - beta2^t
  at::Tensor buf_, m_, v_;  // momentum buffer; Adam moments
  int64_t t_ = 0;
};

}  // namespace bs
