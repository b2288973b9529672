#include "train/device_data.h"

#include <sstream>

#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include "util/errors.h"

namespace bs {
namespace {

std::string shape_text(at::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

std::vector<int64_t> with_rows(int64_t rows, const std::vector<int64_t>& per_sample) {
  std::vector<int64_t> s{rows};
  s.insert(s.end(), per_sample.begin(), per_sample.end());
  return s;
}

// from_blob borrows the host vector; to(..., copy=true) makes the device copy we own.
template <typename T>
at::Tensor copy_to(const std::vector<T>& v, const std::vector<int64_t>& shape, at::ScalarType type,
                   const at::Device& device) {
  return at::from_blob(const_cast<T*>(v.data()), shape, at::TensorOptions().dtype(type))
      .to(device, /*non_blocking=*/false, /*copy=*/true);
}

// The model's own words without LibTorch's C++ backtrace, cut to a readable length.
std::string model_message(const std::exception& e) {
  const auto* c10e = dynamic_cast<const c10::Error*>(&e);
  std::string m = c10e ? c10e->what_without_backtrace() : e.what();
  constexpr size_t kMax = 1500;
  if (m.size() > kMax) m = m.substr(0, kMax) + " [...]";
  return m;
}

std::string model_label(const std::string& study_file, const ModelSpec& spec) {
  if (spec.name == "torchscript") return spec.path + " (model.path in " + study_file + ")";
  return "model " + spec.name + " (model.name in " + study_file + ")";
}

}  // namespace

at::Tensor DeviceSplit::inputs(const at::Tensor& idx) const {
  at::Tensor v = x.index_select(0, idx);
  return standardize ? v.to(at::kFloat).mul_(1.0f / (255.0f * stdev)).sub_(mean / stdev) : v;
}
at::Tensor DeviceSplit::targets(const at::Tensor& idx) const { return y.index_select(0, idx); }
at::Tensor DeviceSplit::inputs(int64_t begin, int64_t len) const {
  at::Tensor v = x.narrow(0, begin, len);
  return standardize ? v.to(at::kFloat).mul_(1.0f / (255.0f * stdev)).sub_(mean / stdev) : v;
}
at::Tensor DeviceSplit::targets(int64_t begin, int64_t len) const { return y.narrow(0, begin, len); }

DeviceSplit to_device(const Dataset& d, const at::Device& device) {
  DeviceSplit s;
  const auto xs = with_rows(d.size, d.sample_shape);
  if (d.input_type == InputType::U8) {
    s.x = copy_to(d.images, xs, at::kByte, device);
    s.standardize = true;
    s.mean = d.mean;
    s.stdev = d.stdev;
  } else {
    s.x = copy_to(d.features, xs, at::kFloat, device);
  }
  if (d.target_type == TargetType::Class)
    s.y = copy_to(d.labels, {d.size}, at::kLong, device);
  else
    s.y = copy_to(d.targets, with_rows(d.size, d.target_shape), at::kFloat, device);
  return s;
}

void require_fits_device(const Dataset& train, const Dataset& test, int64_t free_bytes, const std::string& device) {
  const int64_t need = train.bytes() + test.bytes();
  if (need <= free_bytes) return;
  constexpr double kMB = 1024.0 * 1024.0;
  std::ostringstream o;
  o.precision(1);
  o << std::fixed << "the data set needs " << static_cast<double>(need) / kMB << " MB on " << device << " but only "
    << static_cast<double>(free_bytes) / kMB
    << " MB are free; it stays resident on the device, so cut it with data.train_size / data.test_size";
  throw DataError(o.str());
}

at::Tensor Objective::mean_loss(const at::Tensor& out, const at::Tensor& y) const {
  if (mse_) return at::mse_loss(out.reshape(y.sizes()), y);
  return at::nll_loss(at::log_softmax(out, 1), y);
}

void Objective::add_sums(const at::Tensor& out, const at::Tensor& y, at::Tensor& acc) const {
  if (mse_) {
    // Per sample, the mean over the target's elements, as mean_loss averages.
    const double per_sample = y.dim() > 1 ? static_cast<double>(y[0].numel()) : 1.0;
    acc[0] += at::mse_loss(out.reshape(y.sizes()), y, at::Reduction::Sum).to(at::kDouble) / per_sample;
    return;
  }
  acc[0] += at::nll_loss(at::log_softmax(out, 1), y, {}, at::Reduction::Sum).to(at::kDouble);
  acc[1] += out.argmax(1).eq(y).sum().to(at::kDouble);
}

ModelShape model_shape(const Dataset& train) {
  ModelShape s;
  s.sample_shape = train.sample_shape;
  s.outputs = train.target_type == TargetType::Class ? train.num_classes : train.target_numel();
  return s;
}

namespace {

// The model on x in evaluation mode (BatchNorm's running statistics stay as
// they are), without a gradient; a failure names the model and the input.
at::Tensor forward_checked(const std::string& label, Model& model, const at::Tensor& flat, const at::Tensor& x) {
  at::NoGradGuard no_grad;
  model.set_training(false);
  try {
    at::Tensor out = model.forward(flat, x);
    model.set_training(true);
    return out;
  } catch (const DataError&) {  // the model's own account, already naming its file
    model.set_training(true);
    throw;
  } catch (const std::exception& e) {
    model.set_training(true);
    throw DataError(label + ": the forward pass on an input of shape " + shape_text(x.sizes()) +
                    " failed: " + model_message(e));
  }
}

std::string check_mse(const std::string& label, const std::string& got, const at::Tensor& out, const at::Tensor& y) {
  if (out.dim() == 0 || out.size(0) != y.size(0) || out.numel() != y.numel())
    throw DataError(label + ": " + got + ", which does not fit the targets " + shape_text(y.sizes()) +
                    " of the mse loss (one output per target element, batch first)");
  return got + ", fitting the targets " + shape_text(y.sizes());
}

std::string check_logits(const std::string& label, const std::string& got, const at::Tensor& out, int64_t b,
                         int64_t num_classes) {
  if (out.dim() != 2 || out.size(0) != b)
    throw DataError(label + ": " + got + "; cross_entropy needs logits [B, C] (B = " + std::to_string(b) + ")");
  if (out.size(1) < num_classes)
    throw DataError(label + ": " + got + ", " + std::to_string(out.size(1)) + " classes, but the labels go up to " +
                    std::to_string(num_classes - 1) + "; cross_entropy needs C >= " + std::to_string(num_classes) +
                    " (every label in 0..C-1)");
  return got + ", " + std::to_string(out.size(1)) + " classes for labels 0.." + std::to_string(num_classes - 1);
}

}  // namespace

std::string check_output(const std::string& study_file, const ModelSpec& spec, Model& model, const at::Tensor& flat,
                         const DeviceSplit& split, int64_t num_classes) {
  const int64_t b = std::min<int64_t>(2, split.size());
  const at::Tensor x = split.inputs(0, b);
  const at::Tensor y = split.targets(0, b);
  const std::string label = model_label(study_file, spec);
  const at::Tensor out = forward_checked(label, model, flat, x);
  const std::string got =
      "the model returns " + shape_text(out.sizes()) + " for an input of shape " + shape_text(x.sizes());
  if (!out.is_floating_point())
    throw DataError(label + ": " + got + " of type " + std::string(c10::toString(out.scalar_type())) +
                    "; the loss needs a floating-point output");
  if (spec.loss == "mse") return check_mse(label, got, out, y);
  return check_logits(label, got, out, b, num_classes);
}

}  // namespace bs
