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

// What the model is built for: one sample's input shape and the width of its
// output (classes for cross_entropy, the target's width for mse).
struct ModelShape {
  std::vector<int64_t> sample_shape;
  int64_t outputs = 10;
};

class Model {
 public:
  virtual ~Model() = default;
  int64_t num_params() const { return num_params_; }
  const std::vector<ParamSlot>& slots() const { return slots_; }
  // A run's starting parameters. Built-ins: PyTorch's default init
  // (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases), drawn from
  // our own RNG so that every rank, device and LibTorch version starts a run
  // from the same parameters. TorchScript: the file's weights (model.init:
  // file) or the same per-layer-type scheme drawn from `seed`.
  virtual std::vector<float> init(uint64_t seed) const;
  // x: [b, sample_shape...] float (uint8 inputs already standardized);
  // returns [b, outputs] (or what the module returns, checked by the caller).
  at::Tensor forward(const at::Tensor& flat, const at::Tensor& x) const { return forward(views(flat), x); }
  // The same with the parameters as views(flat): the trainer takes the
  // gradient with respect to these, one tensor per slot, and writes them
  // into its reduction buffer itself (no concatenated copy first).
  virtual at::Tensor forward(const std::vector<at::Tensor>& params, const at::Tensor& x) const = 0;
  // Every slot's view of `flat` ([num_params()]), from one split_with_sizes:
  // its backward concatenates the slots' gradients, where a narrow per slot
  // would fill a zero buffer the size of the whole model for each (measured:
  // the cnn's step 7% faster on the CPU).
  std::vector<at::Tensor> views(const at::Tensor& flat) const;

  // State that is not a parameter (BatchNorm running statistics): updated by
  // forward in training mode, per rank, never reduced with the gradient.
  // The live tensors in a fixed order, so a caller can average, save and
  // restore them in place. Built-ins have none.
  virtual std::vector<std::string> buffer_names() const { return {}; }
  virtual std::vector<at::Tensor> buffers() const { return {}; }
  // Puts the buffers back to their values at the start of a run.
  virtual void reset_buffers() {}
  // Training mode (BatchNorm uses batch statistics, dropout is active) or
  // evaluation mode.
  virtual void set_training(bool /*on*/) {}
  // "builtin", "file" or "seeded": where init() takes the weights from.
  virtual std::string init_source() const { return "builtin"; }

 protected:
  const ParamSlot& add(const std::string& name, std::vector<int64_t> shape, int64_t fan_in);

 private:
  std::vector<ParamSlot> slots_;
  int64_t num_params_ = 0;
};

// Builds spec's model for inputs of `shape` on `device` (a TorchScript module
// is loaded from spec.path and moved there). Throws ConfigError for a shape
// the model cannot take (the cnn needs [C, H, W] or [H, W] samples) and
// DataError for a missing or unreadable model file.
std::unique_ptr<Model> make_model(const std::string& study_file, const ModelSpec& spec, const ModelShape& shape,
                                  const at::Device& device);

}  // namespace bs
