#include "models/torchscript.h"

#include <cmath>
#include <optional>
#include <sstream>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/version.h>

#include "util/errors.h"
#include "util/rng.h"

namespace bs {
namespace {

using ObjectPtr = c10::intrusive_ptr<c10::ivalue::Object>;

// Where one parameter or buffer lives: an attribute slot of its owning
// submodule, found once by name so that a step does no string lookups.
struct Attr {
  ObjectPtr owner;
  size_t slot = 0;
  std::string leaf;            // the attribute's own name: "weight"
  std::string qualified_type;  // "__torch__.torch.nn.modules.linear.Linear"
  std::string nn_type;         // "Linear"; "" for a class outside torch.nn.modules
};

// The torch.nn class of a TorchScript class name, without the mangling that
// scripting adds to tell apart two instances of one class
// ("__torch__.torch.nn.modules.linear.___torch_mangle_3.Linear" → "Linear");
// "" for any other class (the model's own).
std::string nn_class(const std::string& qualified) {
  static const std::string prefix = "__torch__.torch.nn.modules.";
  if (qualified.compare(0, prefix.size(), prefix) != 0) return "";
  return qualified.substr(qualified.rfind('.') + 1);
}

Attr locate(const torch::jit::Module& root, const std::string& dotted) {
  ObjectPtr owner = root._ivalue();
  size_t start = 0;
  for (size_t dot = dotted.find('.'); dot != std::string::npos; dot = dotted.find('.', start)) {
    owner = owner->getAttr(dotted.substr(start, dot - start)).toObject();
    start = dot + 1;
  }
  Attr a;
  a.owner = owner;
  a.leaf = dotted.substr(start);
  a.slot = owner->type()->getAttributeSlot(a.leaf);
  const auto name = owner->type()->name();
  a.qualified_type = name ? name->qualifiedName() : std::string("?");
  a.nn_type = nn_class(a.qualified_type);
  return a;
}

std::string first_line(const std::string& text) {
  const auto nl = text.find('\n');
  return nl == std::string::npos ? text : text.substr(0, nl);
}

// c10::Error's what() carries a C++ backtrace; its own message is enough.
std::string message_of(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

std::string shape_str(at::IntArrayRef shape) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < shape.size(); ++i) o << (i ? ", " : "") << shape[i];
  o << "]";
  return o.str();
}

bool is_out_of_memory(const std::exception& e) {
  // The TorchScript interpreter re-throws a failed op's error as a plain
  // std::runtime_error with the op's message, so the type alone cannot tell.
  return dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr ||
         std::string(e.what()).find("out of memory") != std::string::npos;
}

// Runs the module's TorchScript graphs as written, op by op. With the graph
// executor's optimizations on (LibTorch's default) the profiling executor
// records the input shapes of the first calls and specializes the graph to
// them: every new batch shape (an uneven last micro-batch, the evaluation
// batch) re-profiles and recompiles, and the optimized graph may compute
// differently from eager PyTorch (ops decomposed and fused, autodiff
// subgraphs with their own backward formulas). Without them the interpreter
// calls the same ATen kernels, in the same order, as eager PyTorch, and
// autograd records each op, so forward and gradient equal eager mode's. The
// switch (torch::jit::setGraphExecutorOptimize, the same in LibTorch 1.13 and
// 2.x) is thread-local, so it is set around every call rather than once.
class NoGraphOptimization {
 public:
  NoGraphOptimization() : was_(torch::jit::getGraphExecutorOptimize()) { torch::jit::setGraphExecutorOptimize(false); }
  ~NoGraphOptimization() { torch::jit::setGraphExecutorOptimize(was_); }
  NoGraphOptimization(const NoGraphOptimization&) = delete;
  NoGraphOptimization& operator=(const NoGraphOptimization&) = delete;

 private:
  bool was_;
};

bool is_norm(const std::string& t) {
  return t == "BatchNorm1d" || t == "BatchNorm2d" || t == "BatchNorm3d" || t == "SyncBatchNorm" ||
         t == "InstanceNorm1d" || t == "InstanceNorm2d" || t == "InstanceNorm3d" || t == "LayerNorm" ||
         t == "GroupNorm";
}

bool is_linear_or_conv(const std::string& t) {
  return t == "Linear" || t == "NonDynamicallyQuantizableLinear" || t == "Conv1d" || t == "Conv2d" || t == "Conv3d";
}

// How init: seeded redraws one parameter: LibTorch's default for its module.
struct Draw {
  enum class Kind { Uniform, Constant, Normal } kind = Kind::Uniform;
  double value = 0;       // Uniform: the bound; Constant: the value
  int64_t zero_row = -1;  // Normal (Embedding): padding_idx, a row of zeros
  int64_t row_len = 0;    // Normal: the embedding width
};

class TorchScriptModel final : public Model {
 public:
  TorchScriptModel(const std::string& study_file, const ModelSpec& spec, const at::Device& device)
      : path_(spec.path), init_(spec.init) {
    if (init_ != "file" && init_ != "seeded")
      throw std::invalid_argument("TorchScript model: init '" + init_ + "', expected file or seeded");
    try {
      module_ = torch::jit::load(path_, device);
    } catch (const std::exception& e) {
      throw DataError(path_ + " (model.path) is not a TorchScript file LibTorch " + TORCH_VERSION +
                      " can load; save the model with torch.jit.script(model).save(path) or "
                      "torch.jit.trace(model, example).save(path) (a state dict or torch.save(model) will not do): " +
                      first_line(message_of(e)));
    }
    auto method = module_.find_method("forward");
    if (!method) throw DataError(path_ + " (model.path): the module has no forward method");
    forward_.emplace(*method);
    find_parameters(study_file);
    find_buffers();
    module_.train(true);
  }

  std::vector<float> init(uint64_t seed) const override {
    if (init_ == "file") return saved_;
    std::vector<float> p(static_cast<size_t>(num_params()));
    for (size_t i = 0; i < slots().size(); ++i) {
      const auto& s = slots()[i];
      const Draw& d = draws_[i];
      Rng rng(mix_seed({seed, static_cast<uint64_t>(i)}));
      float* out = p.data() + s.offset;
      for (int64_t k = 0; k < s.numel(); ++k) {
        double v = d.value;
        if (d.kind == Draw::Kind::Uniform) v = (2.0 * rng.uniform() - 1.0) * d.value;
        if (d.kind == Draw::Kind::Normal) v = rng.normal();
        out[k] = static_cast<float>(v);
      }
      if (d.kind == Draw::Kind::Normal && d.zero_row >= 0)
        std::fill(out + d.zero_row * d.row_len, out + (d.zero_row + 1) * d.row_len, 0.f);
    }
    return p;
  }

  using Model::forward;
  // The parameters are views of the flat buffer (Model::views: one split, a
  // single autograd node, rather than a narrow per parameter, each of whose
  // backward fills a zero buffer of the whole size: ~13% less time per step
  // for a 784-512-256-10 mlp at batch 32 on the CPU, and as fast as copying
  // the parameters in and their gradients out), set as the module's
  // attributes before each call.
  at::Tensor forward(const std::vector<at::Tensor>& w, const at::Tensor& x) const override {
    if (w.size() != params_.size())
      throw std::invalid_argument("TorchScript model: " + std::to_string(w.size()) + " parameter tensors, expected " +
                                  std::to_string(params_.size()));
    NoGraphOptimization no_optimization;
    for (size_t i = 0; i < params_.size(); ++i) params_[i].owner->setSlot(params_[i].slot, w[i]);
    c10::IValue out;
    try {
      out = (*forward_)(std::vector<c10::IValue>{x});
    } catch (const std::exception& e) {
      if (is_out_of_memory(e)) throw;
      throw DataError(path_ + " (model.path): forward failed on inputs of shape " + shape_str(x.sizes()) + ": " +
                      message_of(e));
    }
    if (!out.isTensor())
      throw DataError(
          path_ + " (model.path): forward returned a " + out.tagKind() +
          ", not a tensor; batchscope trains modules whose forward(x) returns the output, [batch, outputs]");
    return out.toTensor();
  }

  std::vector<std::string> buffer_names() const override { return buffer_names_; }

  std::vector<at::Tensor> buffers() const override {
    std::vector<at::Tensor> out;
    out.reserve(buffers_.size());
    for (const auto& b : buffers_) out.push_back(b.owner->getSlot(b.slot).toTensor());
    return out;
  }

  void reset_buffers() override {
    at::NoGradGuard no_grad;
    const auto live = buffers();
    for (size_t i = 0; i < live.size(); ++i) live[i].copy_(buffer_start_[i]);
  }

  void set_training(bool on) override { module_.train(on); }

  std::string init_source() const override { return init_; }

 private:
  void find_parameters(const std::string& study_file) {
    std::vector<at::Tensor> values;
    for (const auto& p : module_.named_parameters(/*recurse=*/true)) {
      const at::Tensor& t = p.value;
      if (t.scalar_type() != at::kFloat)
        throw DataError(path_ + " (model.path): parameter '" + p.name + "' is " +
                        std::string(c10::toString(t.scalar_type())) +
                        "; batchscope trains float32 parameters (save the model after model.float())");
      // Every parameter is trained (one flat buffer, one optimizer): a frozen
      // one would silently move, so it is refused with the way to keep it.
      if (!t.requires_grad())
        throw DataError(path_ + " (model.path): parameter '" + p.name +
                        "' is frozen (requires_grad=False); batchscope trains every parameter. Keep a fixed tensor "
                        "as a buffer (self.register_buffer) instead");
      for (size_t j = 0; j < values.size(); ++j)
        if (overlap(values[j], t))
          throw DataError(path_ + " (model.path): parameters '" + slots()[j].name + "' and '" + p.name +
                          "' share memory (tied weights); batchscope gives every parameter its own place in one "
                          "flat buffer, which would untie them");
      Attr a = locate(module_, p.name);
      int64_t fan_in = 1;
      if (t.dim() >= 2) {
        fan_in = t.numel() / t.size(0);
      } else {
        // a bias shares its layer's fan-in (as in nn.Linear)
        const auto w = a.owner->type()->hasAttribute("weight") ? a.owner->getAttr("weight") : c10::IValue();
        if (w.isTensor() && w.toTensor().dim() >= 2) fan_in = w.toTensor().numel() / w.toTensor().size(0);
      }
      add(p.name, t.sizes().vec(), fan_in);
      if (init_ == "seeded") draws_.push_back(draw_for(study_file, p.name, a));
      params_.push_back(std::move(a));
      values.push_back(t);
    }
    if (params_.empty()) throw DataError(path_ + " (model.path): the module has no parameters to train");
    saved_.reserve(static_cast<size_t>(num_params()));
    for (const auto& t : values) {
      const at::Tensor h = t.detach().to(at::kCPU).contiguous();
      saved_.insert(saved_.end(), h.data_ptr<float>(), h.data_ptr<float>() + h.numel());
    }
  }

  // Whether two tensors use some of the same memory.
  static bool overlap(const at::Tensor& a, const at::Tensor& b) {
    if (a.numel() == 0 || b.numel() == 0 || !a.has_storage() || !b.has_storage()) return false;
    if (!a.storage().is_alias_of(b.storage())) return false;
    auto span = [](const at::Tensor& t) {
      int64_t last = 0;
      for (int64_t d = 0; d < t.dim(); ++d) last += (t.size(d) - 1) * t.stride(d);
      return std::make_pair(t.storage_offset(), t.storage_offset() + last + 1);
    };
    const auto sa = span(a), sb = span(b);
    return sa.first < sb.second && sb.first < sa.second;
  }

  // LibTorch's default initialization for the parameter's module type, or a
  // ConfigError for a type we do not know.
  Draw draw_for(const std::string& study_file, const std::string& name, const Attr& a) const {
    Draw d;
    const std::string& t = a.nn_type;
    if (is_linear_or_conv(t) && (a.leaf == "weight" || a.leaf == "bias")) {
      // kaiming_uniform_(a=sqrt(5)) for the weight and the bias's
      // U(-1/sqrt(fan_in), 1/sqrt(fan_in)) have the same bound.
      const at::Tensor w = a.owner->getAttr("weight").toTensor();
      const int64_t fan_in = w.dim() >= 2 ? w.numel() / w.size(0) : 0;
      d.kind = Draw::Kind::Uniform;
      d.value = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
      return d;
    }
    if (is_norm(t) && (a.leaf == "weight" || a.leaf == "bias")) {
      d.kind = Draw::Kind::Constant;
      d.value = a.leaf == "weight" ? 1.0 : 0.0;
      return d;
    }
    if (t == "Embedding" && a.leaf == "weight") {
      const at::Tensor w = a.owner->getAttr("weight").toTensor();
      d.kind = Draw::Kind::Normal;
      d.row_len = w.dim() == 2 ? w.size(1) : 0;
      // padding_idx is one of nn.Embedding's __constants__: a class constant
      // in TorchScript, not an attribute.
      const auto& type = a.owner->type();
      const c10::IValue pad = type->hasConstant("padding_idx")    ? type->getConstant("padding_idx")
                              : type->hasAttribute("padding_idx") ? a.owner->getAttr("padding_idx")
                                                                  : c10::IValue();
      if (pad.isInt() && w.dim() == 2) d.zero_row = pad.toInt() < 0 ? pad.toInt() + w.size(0) : pad.toInt();
      return d;
    }
    throw ConfigError(study_file, "model.init",
                      "seeded: parameter '" + name + "' belongs to a module of type " + a.qualified_type +
                          ", which has no default initialization batchscope knows (it redraws the parameters of "
                          "torch.nn Linear, Conv1d/2d/3d, BatchNorm, InstanceNorm, LayerNorm, GroupNorm and "
                          "Embedding); use init: file to start from the file's weights");
  }

  void find_buffers() {
    for (const auto& b : module_.named_buffers(/*recurse=*/true)) {
      Attr a = locate(module_, b.name);
      at::Tensor start = b.value.detach().clone();
      if (init_ == "seeded" && is_norm(a.nn_type)) {
        if (a.leaf == "running_mean" || a.leaf == "num_batches_tracked") start.zero_();
        if (a.leaf == "running_var") start.fill_(1);
      }
      buffer_names_.push_back(b.name);
      buffer_start_.push_back(start);
      buffers_.push_back(std::move(a));
    }
    reset_buffers();
  }

  std::string path_, init_;
  torch::jit::Module module_;
  std::optional<torch::jit::Method> forward_;
  std::vector<Attr> params_;  // parallel to slots()
  std::vector<Draw> draws_;   // init: seeded only
  std::vector<float> saved_;  // the file's parameters, in slot order
  std::vector<std::string> buffer_names_;
  std::vector<Attr> buffers_;
  std::vector<at::Tensor> buffer_start_;  // what reset_buffers() restores
};

}  // namespace

std::unique_ptr<Model> make_torchscript_model(const std::string& study_file, const ModelSpec& spec,
                                              const ModelShape& /*shape*/, const at::Device& device) {
  return std::make_unique<TorchScriptModel>(study_file, spec, device);
}

}  // namespace bs
