#pragma once
// The data set as the trainer holds it on its device, and the loss that
// compares a model's output with it. Internal to train/ (trainer.cpp and
// model_check.cpp); LibTorch types, so no header outside train/ includes it.
#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include "config/study.h"
#include "data/dataset.h"
#include "models/model.h"

namespace bs {

// One split resident on the device: x as stored (uint8 or float32), y as
// int64 labels [N] or float targets [N, ...].
struct DeviceSplit {
  at::Tensor x;
  at::Tensor y;
  bool standardize = false;  // uint8 x: (x / 255 - mean) / stdev
  float mean = 0, stdev = 1;
  int64_t size() const { return y.size(0); }
  // Model inputs (float) and targets of the samples `idx` (int64 indices).
  at::Tensor inputs(const at::Tensor& idx) const;
  at::Tensor targets(const at::Tensor& idx) const;
  // The same for the contiguous samples [begin, begin + len).
  at::Tensor inputs(int64_t begin, int64_t len) const;
  at::Tensor targets(int64_t begin, int64_t len) const;
};

// Copies a split to `device` (require_fits_device first, for a GPU).
DeviceSplit to_device(const Dataset& d, const at::Device& device);

// Bytes both splits take on the device, and the check against `free_bytes`
// (DataError naming the sizes and data.train_size).
void require_fits_device(const Dataset& train, const Dataset& test, int64_t free_bytes, const std::string& device);

// model.loss: cross_entropy (logits [b, C] against int64 labels) or mse
// (output reshaped to the targets' shape, mean over the elements).
class Objective {
 public:
  explicit Objective(const ModelSpec& spec) : mse_(spec.loss == "mse") {}
  bool classifies() const { return !mse_; }
  // The batch's mean loss (what is differentiated).
  at::Tensor mean_loss(const at::Tensor& out, const at::Tensor& y) const;
  // Adds [loss summed over samples, correct predictions] to acc[0], acc[1]
  // (acc[1] stays 0 for mse, whose accuracy is undefined).
  void add_sums(const at::Tensor& out, const at::Tensor& y, at::Tensor& acc) const;

 private:
  bool mse_;
};

// The output width a model must produce for the data: classes or the
// target's width.
ModelShape model_shape(const Dataset& train);

// Runs the model on the split's first two samples (evaluation mode, no
// gradient) and checks the output against the loss and the labels. Throws
// DataError naming the model (model.path for TorchScript, else model.name),
// the input shape, and what was expected.
std::string check_output(const std::string& study_file, const ModelSpec& spec, Model& model, const at::Tensor& flat,
                         const DeviceSplit& split, int64_t num_classes);

}  // namespace bs
