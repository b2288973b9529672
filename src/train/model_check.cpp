#include "train/model_check.h"

#include <sstream>

#include "data/dataset.h"
#include "models/model.h"
#include "train/device_data.h"
#include "util/rng.h"

namespace bs {
namespace {

std::string shape_text(int64_t rows, const std::vector<int64_t>& per_sample) {
  std::ostringstream o;
  o << "[" << rows;
  for (auto d : per_sample) o << ", " << d;
  o << "]";
  return o.str();
}

std::string describe(const Dataset& d) {
  std::string s = shape_text(d.size, d.sample_shape) + (d.input_type == InputType::U8 ? " uint8" : " float32");
  if (d.target_type == TargetType::Class) return s + ", labels 0.." + std::to_string(d.num_classes - 1);
  return s + ", float targets " + shape_text(d.size, d.target_shape);
}

}  // namespace

std::string check_model(const Study& st, const DataSplits& data) {
  check_loss_fits(st.file, st.model.loss, data);
  const at::Device cpu(at::kCPU);
  auto model = make_model(st.file, st.model, model_shape(data.train), cpu);
  auto init = model->init(mix_seed({st.seed, 1, 0x1417u}));
  at::Tensor flat = at::from_blob(init.data(), {model->num_params()}, at::kFloat);
  const DeviceSplit train = to_device(data.train, cpu);
  const std::string out = check_output(st.file, st.model, *model, flat, train, data.train.num_classes);
  std::ostringstream o;
  o << "  data: train " << describe(data.train) << "; test " << describe(data.test) << "\n";
  o << "  model: " << st.model.name << (st.model.name == "torchscript" ? " " + st.model.path : "") << ", "
    << model->num_params() << " parameters in " << model->slots().size() << " tensors, init " << model->init_source()
    << ", loss " << st.model.loss << "\n";
  const auto buffers = model->buffer_names();
  if (!buffers.empty()) {
    o << "  buffers:";
    for (const auto& b : buffers) o << " " << b;
    o << " (per rank; averaged over a run's ranks at every log interval, so a split batch is not exactly "
         "invisible)\n";
  }
  o << "  forward: " << out << "\n";
  return o.str();
}

}  // namespace bs
