#include "train/optimizer.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "train/fused_sgd.h"
#include "train/sqnorm.h"
#include "util/errors.h"

namespace bs {

FlatOptimizer::FlatOptimizer(const OptimizerSpec& spec, const at::Tensor& params) : spec_(spec) {
  neg_lr_ = at::zeros({1}, params.options().requires_grad(false));
  bc2_ = at::ones({1}, params.options().requires_grad(false));
  auto zeros = [&] { return at::zeros_like(params).set_requires_grad(false); };
  if (spec_.name == "sgd" && spec_.momentum > 0) buf_ = zeros();
  if (spec_.name == "adam") {
    m_ = zeros();
    v_ = zeros();
  }
}

std::vector<at::Tensor> FlatOptimizer::buffers() const {
  std::vector<at::Tensor> out;
  for (const auto* t : {&buf_, &m_, &v_})
    if (t->defined()) out.push_back(*t);
  return out;
}

void FlatOptimizer::restore(int64_t steps, const std::vector<at::Tensor>& bufs) {
  auto mine = buffers();
  if (mine.size() != bufs.size())
    throw CheckpointError("checkpoint holds " + std::to_string(bufs.size()) + " optimizer buffers, " + spec_.name +
                          " keeps " + std::to_string(mine.size()));
  for (size_t i = 0; i < mine.size(); ++i) {
    if (mine[i].numel() != bufs[i].numel())
      throw CheckpointError("checkpoint's optimizer buffer " + std::to_string(i) + " holds " +
                            std::to_string(bufs[i].numel()) + " values, the model has " +
                            std::to_string(mine[i].numel()));
    mine[i].copy_(bufs[i]);
  }
  t_ = steps;
}

void FlatOptimizer::step(at::Tensor& params, const at::Tensor& grad, double lr) {
  prepare(lr);
  apply(params, grad);
}

// Why: LibTorch's mul_, add_ and addcmul_ (and with weight decay or
// Nesterov an add and a temporary each) are passes of their own over the
// parameters, momentum and gradient, and the norm another.
bool FlatOptimizer::fused_step(at::Tensor& params, const at::Tensor& grad, double lr, double* sqnorm) {
  const bool momentum = spec_.momentum > 0;
  if (spec_.name != "sgd" || !sqnorm_kernel_applies(params) || !sqnorm_kernel_applies(grad) ||
      (momentum && !sqnorm_kernel_applies(buf_)))
    return false;
  prepare(lr);
  SgdScalars s;
  s.momentum = static_cast<float>(spec_.momentum);
  s.neg_lr = neg_lr_.item<float>();
  s.weight_decay = spec_.weight_decay > 0 ? static_cast<float>(spec_.weight_decay) : 0.0F;
  s.nesterov = momentum && spec_.nesterov;
  sgd_pass(params.data_ptr<float>(), momentum ? buf_.data_ptr<float>() : nullptr, grad.data_ptr<float>(),
           params.numel(), s, sqnorm);
  return true;
}

// Host arithmetic and two small fills, outside any CUDA graph: a graph would
// replay the values it saw at capture.
void FlatOptimizer::prepare(double lr) {
  ++t_;
  if (spec_.name != "adam") {
    neg_lr_.fill_(-lr);
    return;
  }
  const double bc1 = 1 - std::pow(spec_.beta1, static_cast<double>(t_));
  const double bc2 = 1 - std::pow(spec_.beta2, static_cast<double>(t_));
  // Fold the bias corrections into the step size, as torch.optim.Adam does.
  neg_lr_.fill_(-lr / bc1);
  bc2_.fill_(bc2);
}

// Tensor operations only, reading the step's scalars from the device: the
// same kernels whether run eagerly or replayed from a graph.
void FlatOptimizer::apply(at::Tensor& params, const at::Tensor& grad) {
  at::Tensor d = spec_.weight_decay > 0 ? grad.add(params, spec_.weight_decay) : grad;
  if (spec_.name == "adam") {
    m_.mul_(spec_.beta1).add_(d, 1 - spec_.beta1);
    v_.mul_(spec_.beta2).addcmul_(d, d, 1 - spec_.beta2);
    at::Tensor denom = (v_ / bc2_).sqrt_().add_(spec_.eps);
    params.addcdiv_(m_ * neg_lr_, denom);
    return;
  }
  if (spec_.momentum > 0) {
    // buf starts at zero, so the first step gives buf = d, as torch.optim.SGD.
    buf_.mul_(spec_.momentum).add_(d);
    d = spec_.nesterov ? d.add(buf_, spec_.momentum) : buf_;
  }
  params.addcmul_(d, neg_lr_);
}

}  // namespace bs
