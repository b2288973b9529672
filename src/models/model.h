#pragma once
// Models as pure functions of one flat parameter buffer: each layer's weight
// and bias are views into it, so one reduction, one norm and one optimizer
// update cover the whole model (and a CUDA graph can capture the step later).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "config/study.h"

namespace bs {

struct ParamSlot {
  std::string name;
  int64_t offset = 0;
  std::vector<int64_t> shape;
  int64_t fan_in = 0;
  int64_t numel() const;
};

class Model {
 public:
  virtual ~Model() = default;
  int64_t num_params() const { return num_params_; }
  const std::vector<ParamSlot>& slots() const { return slots_; }
  // PyTorch's default init (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and
  // biases), drawn from our own RNG so that every rank, device and LibTorch
  // version starts a run from the same parameters.
  std::vector<float> init(uint64_t seed) const;
  // x: [b, C, H, W] float, normalized; returns logits [b, classes].
  virtual at::Tensor forward(const at::Tensor& flat, const at::Tensor& x) const = 0;

 protected:
  const ParamSlot& add(const std::string& name, std::vector<int64_t> shape, int64_t fan_in);
  at::Tensor view(const at::Tensor& flat, size_t slot) const;

 private:
  std::vector<ParamSlot> slots_;
  int64_t num_params_ = 0;
};

std::unique_ptr<Model> make_model(const ModelSpec& spec, int64_t channels, int64_t height, int64_t width,
                                  int64_t classes);

}  // namespace bs
