#include "models/model.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "models/first_conv.h"
#include "models/pool_relu.h"
#include "models/torchscript.h"
#include "util/errors.h"
#include "util/rng.h"

namespace bs {

int64_t ParamSlot::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

const ParamSlot& Model::add(const std::string& name, std::vector<int64_t> shape, int64_t fan_in) {
  ParamSlot s;
  s.name = name;
  s.offset = num_params_;
  s.shape = std::move(shape);
  s.fan_in = fan_in;
  num_params_ += s.numel();
  slots_.push_back(s);
  return slots_.back();
}

std::vector<at::Tensor> Model::views(const at::Tensor& flat) const {
  if (flat.dim() != 1 || flat.size(0) != num_params_)
    throw std::invalid_argument("model: flat parameter buffer of " + std::to_string(flat.numel()) +
                                " values, expected " + std::to_string(num_params_));
  std::vector<int64_t> sizes;
  sizes.reserve(slots_.size());
  for (const auto& s : slots_) sizes.push_back(s.numel());
  std::vector<at::Tensor> parts = flat.split_with_sizes(sizes);
  for (size_t i = 0; i < parts.size(); ++i) parts[i] = parts[i].view(slots_[i].shape);
  return parts;
}

std::vector<float> Model::init(uint64_t seed) const {
  std::vector<float> p(static_cast<size_t>(num_params_));
  for (size_t i = 0; i < slots_.size(); ++i) {
    const auto& s = slots_[i];
    Rng rng(mix_seed({seed, static_cast<uint64_t>(i)}));
    const double bound = 1.0 / std::sqrt(static_cast<double>(s.fan_in));
    for (int64_t k = 0; k < s.numel(); ++k)
      p[static_cast<size_t>(s.offset + k)] = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
  }
  return p;
}

namespace {

class Mlp final : public Model {
 public:
  Mlp(const std::vector<int64_t>& hidden, int64_t in, int64_t classes) {
    int64_t prev = in;
    for (size_t i = 0; i < hidden.size(); ++i) {
      add("fc" + std::to_string(i) + ".weight", {hidden[i], prev}, prev);
      add("fc" + std::to_string(i) + ".bias", {hidden[i]}, prev);
      prev = hidden[i];
    }
    add("out.weight", {classes, prev}, prev);
    add("out.bias", {classes}, prev);
  }
  using Model::forward;
  at::Tensor forward(const std::vector<at::Tensor>& w, const at::Tensor& x) const override {
    at::Tensor h = x.reshape({x.size(0), -1});
    const size_t layers = slots().size() / 2;
    for (size_t l = 0; l < layers; ++l) {
      h = at::linear(h, w[2 * l], w[2 * l + 1]);
      if (l + 1 < layers) h = at::relu(h);
    }
    return h;
  }
};

// conv32 5x5, pool, conv64 5x5, pool, fc1024, fc10 ("same" padding, as the
// baseline in shared/baselines and the usual Fashion-MNIST CNN).
class Cnn final : public Model {
 public:
  Cnn(int64_t channels, int64_t height, int64_t width, int64_t classes) {
    add("conv1.weight", {32, channels, 5, 5}, channels * 25);
    add("conv1.bias", {32}, channels * 25);
    add("conv2.weight", {64, 32, 5, 5}, int64_t{32} * 25);
    add("conv2.bias", {64}, int64_t{32} * 25);
    const int64_t flat = 64 * (height / 4) * (width / 4);
    add("fc1.weight", {1024, flat}, flat);
    add("fc1.bias", {1024}, flat);
    add("fc2.weight", {classes, 1024}, 1024);
    add("fc2.bias", {classes}, 1024);
  }
  // relu(max_pool(h)) is max_pool(relu(h)), value and gradient (both are
  // monotone; the pool picks the same element), on a quarter of the elements.
  // On the CPU the conv outputs go channels-last: LibTorch's CPU max-pool is
  // vectorized only for that layout (~9x faster at batch 128), the second
  // conv then runs channels-last too, and the reshape before fc1 restores the
  // NCHW order, so the function is the same (cnn step at batch 128: ~140 ->
  // ~108 ms, 1 thread). Pool and relu are then one pass of our own
  // (models/pool_relu.h, the same bits; in-step, batch 128, 1 rank: LibTorch's
  // pool, relu and their backward ~8 ms of the step, ours ~5 ms). On CUDA
  // they stay as cuDNN writes them: there the change of layout was an extra
  // copy of every activation (one H100, graphs on, 1 rank: batch 1024 3.34 ->
  // 2.81 ms, 8192 22.68 -> 19.30 ms a step).
  using Model::forward;
  static at::Tensor pool_relu(const at::Tensor& h) {
    return pool_relu_kernel_applies(h) ? max_pool2_relu(h) : at::relu(at::max_pool2d(h, {2, 2}));
  }
  at::Tensor forward(const std::vector<at::Tensor>& w, const at::Tensor& x) const override {
    const bool cpu = x.is_cpu();
    auto pool_layout = [cpu](const at::Tensor& t) { return cpu ? t.contiguous(at::MemoryFormat::ChannelsLast) : t; };
    at::Tensor h = first_conv_kernel_applies(x, w[0], w[1]) ? first_conv5x5(x, w[0], w[1])
                                                            : pool_layout(at::conv2d(x, w[0], w[1], {1, 1}, {2, 2}));
    h = pool_relu(h);
    h = pool_layout(at::conv2d(h, w[2], w[3], {1, 1}, {2, 2}));
    h = pool_relu(h);
    h = h.reshape({h.size(0), -1});
    h = at::relu(at::linear(h, w[4], w[5]));
    return at::linear(h, w[6], w[7]);
  }
};

}  // namespace

std::unique_ptr<Model> make_model(const std::string& study_file, const ModelSpec& spec, const ModelShape& shape,
                                  const at::Device& device) {
  const auto& s = shape.sample_shape;
  if (spec.name == "mlp") {
    int64_t inputs = 1;
    for (auto d : s) inputs *= d;
    return std::make_unique<Mlp>(spec.hidden, inputs, shape.outputs);
  }
  if (spec.name == "cnn") {
    std::string dims;
    for (size_t i = 0; i < s.size(); ++i) dims += (i ? ", " : "") + std::to_string(s[i]);
    if (s.size() != 2 && s.size() != 3)
      throw ConfigError(study_file, "model.name",
                        "the cnn takes image samples [C, H, W] or [H, W]; the data's samples are [" + dims +
                            "] (use the mlp, or a torchscript model, for other shapes)");
    const int64_t c = s.size() == 3 ? s[0] : 1, h = s[s.size() - 2], w = s[s.size() - 1];
    if (c < 1 || h < 4 || w < 4)
      throw ConfigError(study_file, "model.name",
                        "the cnn pools twice by 2, so it needs images of at least 4x4 with a channel; the data's "
                        "samples are [" +
                            dims + "]");
    return std::make_unique<Cnn>(c, h, w, shape.outputs);
  }
  if (spec.name == "torchscript") return make_torchscript_model(study_file, spec, shape, device);
  throw std::invalid_argument("unknown model '" + spec.name + "'; expected mlp, cnn or torchscript");
}

}  // namespace bs
