// models/torchscript: a TorchScript module as a function of one flat
// parameter buffer. Against the files tests/tools/make_torchscript.py writes
// (ctest's fixture.torchscript_models, folder in BS_TORCHSCRIPT_DIR) and what
// eager PyTorch computed with them: slots in named_parameters() order, init
// file = the saved weights, forward and gradient equal to eager PyTorch's and
// to the module's own, seeded init (LibTorch's defaults, deterministic),
// buffers (live, updated in training mode, reset), modes, and the typed errors
// for files that are not TorchScript or cannot be trained.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/serialization/import.h>

#include "hdf5/h5.h"
#include "helpers.h"
#include "models/model.h"
#include "util/errors.h"

namespace bs {
namespace {

std::string dir() {
  const char* d = std::getenv("BS_TORCHSCRIPT_DIR");
  return d ? d : "torchscript";
}

std::string file(const std::string& name) { return dir() + "/" + name; }

ModelSpec ts(const std::string& name, const std::string& init = "file") {
  ModelSpec s;
  s.name = "torchscript";
  s.path = file(name + ".pt");
  s.init = init;
  return s;
}

std::unique_ptr<Model> load(const std::string& name, const std::string& init = "file") {
  return make_model("s.yaml", ts(name, init), {{1, 28, 28}, 10}, at::kCPU);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  size_t start = 0;
  for (size_t c = s.find(','); c != std::string::npos; c = s.find(',', start)) {
    out.push_back(s.substr(start, c - start));
    start = c + 1;
  }
  out.push_back(s.substr(start));
  return out;
}

// What eager PyTorch computed with NAME.pt (make_torchscript.py's NAME.h5).
struct Reference {
  std::vector<std::string> names, buffer_names;
  at::Tensor params, buffers, x, target, out_eval, out_train, grad, buffers_after;
};

at::Tensor read(hid_t f, const std::string& name, std::vector<int64_t> shape, at::ScalarType type) {
  h5::Handle d = h5::open_dataset(f, name);
  at::Tensor t = at::empty(shape, type);
  const int64_t rows = shape.empty() ? 1 : shape[0];
  const int64_t cols = shape.size() > 1 ? shape[1] : 1;
  const h5::Type ht = type == at::kFloat ? h5::Type::F32 : type == at::kDouble ? h5::Type::F64 : h5::Type::I64;
  if (rows > 0) h5::read_rows(d.id(), ht, rows, cols, t.data_ptr());
  return t;
}

Reference reference(const std::string& name, int64_t outputs, bool mse = false) {
  h5::Handle f = h5::open_file_read(file(name + ".h5"));
  Reference r;
  r.names = split(h5::read_str_attr(f.id(), "names"));
  r.buffer_names = split(h5::read_str_attr(f.id(), "buffer_names"));
  const auto rows = [&](const char* d) { return h5::rows_of(h5::open_dataset(f.id(), d).id()); };
  const int64_t P = rows("params"), Q = rows("buffers"), B = rows("x");
  r.params = read(f.id(), "params", {P}, at::kFloat);
  r.buffers = read(f.id(), "buffers", {Q}, at::kDouble);
  r.buffers_after = read(f.id(), "buffers_after", {Q}, at::kDouble);
  r.x = read(f.id(), "x", {B, 784}, at::kFloat).view({B, 1, 28, 28});
  r.target = mse ? read(f.id(), "target", {B, outputs}, at::kFloat) : read(f.id(), "target", {B}, at::kLong);
  r.out_eval = read(f.id(), "out_eval", {B, outputs}, at::kFloat);
  if (H5Lexists(f.id(), "out_train", H5P_DEFAULT) > 0)
    r.out_train = read(f.id(), "out_train", {B, outputs}, at::kFloat);
  r.grad = read(f.id(), "grad", {P}, at::kFloat);
  return r;
}

at::Tensor flat_of(const Model& m, uint64_t seed) {
  auto p = m.init(seed);
  return at::tensor(p, at::kFloat);
}

at::Tensor loss_of(const at::Tensor& out, const at::Tensor& target) {
  if (target.scalar_type() == at::kFloat) return at::mse_loss(out, target);
  return at::cross_entropy_loss(out, target);
}

// The model's buffers, concatenated as doubles (as TrainState stores them).
at::Tensor buffers_of(const Model& m) {
  std::vector<at::Tensor> parts;
  for (const auto& b : m.buffers()) parts.push_back(b.detach().reshape(-1).to(at::kDouble));
  return parts.empty() ? at::zeros({0}, at::kDouble) : at::cat(parts);
}

std::vector<std::string> slot_names(const Model& m) {
  std::vector<std::string> out;
  for (const auto& s : m.slots()) out.push_back(s.name);
  return out;
}

void expect_error_names_file(const std::string& what, const std::string& path) {
  EXPECT_NE(what.find("model.path"), std::string::npos) << what;
  EXPECT_NE(what.find(path), std::string::npos) << what;
}

struct Case {
  const char* name;
  int64_t outputs;
  bool mse;
};
const Case kCases[] = {{"mlp", 10, false},     {"cnn_bn", 10, false}, {"mlp_small", 10, false},
                       {"dropout", 10, false}, {"regress", 3, true},  {"custom_param", 10, false}};

class EachModel : public ::testing::TestWithParam<Case> {};

// Slots: named_parameters() names, shapes and order (as PyTorch lists them),
// tiling the buffer from 0 without gaps.
TEST_P(EachModel, SlotsAreNamedParametersInOrder) {
  const Case& c = GetParam();
  auto m = load(c.name);
  const Reference r = reference(c.name, c.outputs, c.mse);
  EXPECT_EQ(slot_names(*m), r.names);
  auto plain = torch::jit::load(file(std::string(c.name) + ".pt"));
  size_t i = 0;
  int64_t next = 0;
  for (const auto& p : plain.named_parameters()) {
    ASSERT_LT(i, m->slots().size());
    const auto& s = m->slots()[i++];
    EXPECT_EQ(s.name, p.name);
    EXPECT_EQ(s.shape, p.value.sizes().vec()) << s.name;
    EXPECT_EQ(s.offset, next) << s.name;
    EXPECT_GT(s.fan_in, 0) << s.name;
    next += s.numel();
  }
  EXPECT_EQ(i, m->slots().size());
  EXPECT_EQ(m->num_params(), next);
  EXPECT_EQ(m->num_params(), r.params.numel());
}

// init: file gives the saved weights, whatever the seed.
TEST_P(EachModel, InitFileIsTheSavedWeights) {
  const Case& c = GetParam();
  auto m = load(c.name);
  const Reference r = reference(c.name, c.outputs, c.mse);
  EXPECT_EQ(m->init_source(), "file");
  EXPECT_TRUE(at::equal(flat_of(*m, 1), r.params));
  EXPECT_EQ(m->init(1), m->init(99));
}

// forward(flat, x) computes what eager PyTorch computed with the module, in
// evaluation and in training mode, exactly (same kernels, same order).
TEST_P(EachModel, ForwardEqualsEagerPyTorch) {
  const Case& c = GetParam();
  auto m = load(c.name);
  const Reference r = reference(c.name, c.outputs, c.mse);
  at::Tensor flat = flat_of(*m, 0);
  m->set_training(false);
  EXPECT_TRUE(at::equal(m->forward(flat, r.x), r.out_eval)) << c.name << ": eval mode";
  if (r.out_train.defined()) {
    m->set_training(true);
    EXPECT_TRUE(at::equal(m->forward(flat, r.x), r.out_train)) << c.name << ": training mode";
    EXPECT_TRUE(at::equal(buffers_of(*m), r.buffers_after)) << c.name << ": buffers after one training step";
  }
}

// The gradient w.r.t. the flat buffer is the concatenation of the
// per-parameter gradients: of eager PyTorch, and of the module run plainly
// (its own parameters, module.forward, autograd).
TEST_P(EachModel, GradientIsTheConcatenatedParameterGradients) {
  const Case& c = GetParam();
  if (std::string(c.name) == "dropout") GTEST_SKIP() << "random in training mode";
  auto m = load(c.name);
  const Reference r = reference(c.name, c.outputs, c.mse);
  at::Tensor flat = flat_of(*m, 0).set_requires_grad(true);
  m->set_training(true);
  at::Tensor g = torch::autograd::grad({loss_of(m->forward(flat, r.x), r.target)}, {flat})[0];
  EXPECT_TRUE(at::equal(g, r.grad)) << c.name << ": max difference from eager PyTorch "
                                    << (g - r.grad).abs().max().item<float>();

  auto plain = torch::jit::load(file(std::string(c.name) + ".pt"));
  plain.train(true);
  std::vector<at::Tensor> params;
  for (const auto& p : plain.named_parameters()) params.push_back(p.value);
  at::Tensor out = plain.forward({r.x}).toTensor();
  auto grads = torch::autograd::grad({loss_of(out, r.target)}, params);
  std::vector<at::Tensor> parts;
  for (const auto& t : grads) parts.push_back(t.reshape(-1));
  EXPECT_TRUE(at::equal(g, at::cat(parts))) << c.name << ": differs from module.forward + backward";
}

INSTANTIATE_TEST_SUITE_P(Files, EachModel, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// The module's own forward (LibTorch's defaults, its own parameters) agrees
// with ours on the saved weights, call after call and across batch sizes.
TEST(Forward, EqualsTheModulesOwnForward) {
  auto m = load("cnn_bn");
  auto plain = torch::jit::load(file("cnn_bn.pt"));
  plain.eval();
  m->set_training(false);
  at::Tensor flat = flat_of(*m, 0);
  at::manual_seed(3);
  for (int64_t b : {4, 4, 3, 7, 1, 4}) {
    at::Tensor x = at::randn({b, 1, 28, 28});
    at::NoGradGuard no_grad;
    EXPECT_TRUE(at::equal(m->forward(flat, x), plain.forward({x}).toTensor())) << "batch " << b;
  }
}

// The parameters are views of the buffer: a change to it shows in the next
// forward, with no copy to refresh; and the graph executor's setting is the
// caller's again afterwards.
TEST(Forward, ParametersAreViewsOfTheBuffer) {
  auto m = load("mlp_small");
  at::Tensor flat = flat_of(*m, 0);
  at::Tensor x = at::randn({2, 1, 28, 28});
  at::Tensor y0 = m->forward(flat, x);
  const auto& out_bias = m->slots().back();
  ASSERT_EQ(out_bias.name, "out.bias");
  flat.narrow(0, out_bias.offset, out_bias.numel()).add_(1.0f);
  at::Tensor y1 = m->forward(flat, x);
  EXPECT_TRUE(at::allclose(y1, y0 + 1.0f, 1e-5, 1e-5));
  EXPECT_TRUE(torch::jit::getGraphExecutorOptimize()) << "forward left the graph executor's optimizations off";
  // Under no_grad (evaluation) the same works, on a buffer without grad.
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(m->forward(flat, x), y1));
}

// The graph executor runs the module's graph as written: after forwards and
// backwards over several batch shapes, the last graph it ran has no
// profiling, type-check guards or autodiff subgraphs (with optimizations on,
// LibTorch runs its own symbolic backward graphs here).
TEST(Forward, GraphsRunUnoptimized) {
  auto m = load("cnn_bn");
  at::Tensor flat = flat_of(*m, 0).set_requires_grad(true);
  for (int64_t b : {4, 4, 4, 3, 3, 3}) {
    at::Tensor g = torch::autograd::grad({m->forward(flat, at::randn({b, 1, 28, 28})).sum()}, {flat})[0];
    ASSERT_EQ(g.numel(), m->num_params());
  }
  const auto graph = torch::jit::lastExecutedOptimizedGraph();
  ASSERT_TRUE(graph);
  std::ostringstream text;
  text << *graph;
  for (const char* node : {"prim::profile", "prim::TypeCheck", "prim::RequiresGradCheck", "prim::BailOut",
                           "prim::DifferentiableGraph", "prim::AutogradAllNonZero", "prim::TensorExprGroup"})
    EXPECT_EQ(text.str().find(node), std::string::npos) << node << " in\n" << text.str();
}

// Uneven batches one after another (a last micro-batch, the eval batch): the
// interpreter does not specialize on shapes, so each gives the result of a
// fresh model.
TEST(Forward, UnevenBatchesGiveFreshResults) {
  auto m = load("mlp");
  at::Tensor flat = flat_of(*m, 0).set_requires_grad(true);
  at::manual_seed(5);
  for (int64_t b : {32, 32, 17, 32, 5, 1}) {
    at::Tensor x = at::randn({b, 1, 28, 28});
    at::Tensor y = at::arange(b, at::kLong).remainder(10);
    at::Tensor g = torch::autograd::grad({loss_of(m->forward(flat, x), y)}, {flat})[0];
    auto fresh = load("mlp");
    at::Tensor g2 = torch::autograd::grad({loss_of(fresh->forward(flat, x), y)}, {flat})[0];
    EXPECT_TRUE(at::equal(g, g2)) << "batch " << b;
  }
}

// mlp.pt and cnn.pt have the built-in models' layouts (fc0, fc1, out;
// conv1, conv2, fc1, fc2): init: seeded draws the built-in's numbers, and
// both compute the same logits and gradient, the same bits unless
// `rounding`: the built-in cnn's first convolution on the CPU is batchscope's
// own kernel (models/first_conv.h), which adds the same products as
// at::conv2d in another order.
void expect_same_as_builtin(const char* file, const ModelSpec& b, bool rounding = false) {
  SCOPED_TRACE(file);
  auto m = load(file, "seeded");
  auto builtin = make_model("s.yaml", b, {{1, 28, 28}, 10}, at::kCPU);
  ASSERT_EQ(slot_names(*m), slot_names(*builtin));
  for (size_t i = 0; i < m->slots().size(); ++i) {
    EXPECT_EQ(m->slots()[i].shape, builtin->slots()[i].shape);
    EXPECT_EQ(m->slots()[i].fan_in, builtin->slots()[i].fan_in) << m->slots()[i].name;
  }
  EXPECT_EQ(m->init(17), builtin->init(17));
  at::Tensor flat = flat_of(*m, 17).set_requires_grad(true);
  at::Tensor x = at::randn({8, 1, 28, 28});
  at::Tensor y = at::arange(8, at::kLong).remainder(10);
  at::Tensor a = m->forward(flat, x), c = builtin->forward(flat, x);
  EXPECT_TRUE(rounding ? at::allclose(a, c, 1e-5, 1e-6) : at::equal(a, c));
  at::Tensor ga = torch::autograd::grad({loss_of(a, y)}, {flat})[0];
  at::Tensor gc = torch::autograd::grad({loss_of(c, y)}, {flat})[0];
  if (rounding) {
    EXPECT_TRUE(at::allclose(ga, gc, 1e-5, 1e-7));
    EXPECT_GT(ga.abs().max().item<float>(), 0.f);
  } else {
    EXPECT_TRUE(at::equal(ga, gc));
  }
}

TEST(Seeded, FilesMatchTheBuiltinModels) {
  ModelSpec mlp;
  mlp.name = "mlp";
  mlp.hidden = {512, 256};
  expect_same_as_builtin("mlp", mlp);
  ModelSpec cnn;
  cnn.name = "cnn";
  expect_same_as_builtin("cnn", cnn, /*rounding=*/true);
}

TEST(Seeded, DeterministicAndDifferentPerSeed) {
  for (const char* name : {"mlp_small", "cnn_bn", "embed"}) {
    auto m = load(name, "seeded");
    EXPECT_EQ(m->init_source(), "seeded");
    auto a = m->init(7), b = m->init(7), c = m->init(8);
    EXPECT_EQ(a, b) << name;
    EXPECT_EQ(load(name, "seeded")->init(7), a) << name << ": another model object";
    EXPECT_NE(a, c) << name;
    const auto file_init = load(name)->init(7);
    EXPECT_NE(a, file_init) << name << ": seeded equals the file's weights";
  }
}

double min_of(const std::vector<float>& p, const ParamSlot& s) {
  return *std::min_element(p.begin() + s.offset, p.begin() + s.offset + s.numel());
}
double max_of(const std::vector<float>& p, const ParamSlot& s) {
  return *std::max_element(p.begin() + s.offset, p.begin() + s.offset + s.numel());
}

// LibTorch's defaults per module type: Linear and Conv U(-1/sqrt(fan_in),
// 1/sqrt(fan_in)) with the weight's fan-in for weight and bias; BatchNorm and
// LayerNorm weight 1, bias 0; Embedding N(0, 1) with the padding row zero.
TEST(Seeded, LibTorchDefaultsPerModuleType) {
  auto m = load("cnn_bn", "seeded");
  auto p = m->init(3);
  std::map<std::string, ParamSlot> by;
  for (const auto& s : m->slots()) by[s.name] = s;
  const std::map<std::string, int64_t> fan_in = {
      {"conv1.weight", 9}, {"conv1.bias", 9}, {"conv2.weight", 72}, {"fc.weight", 784}, {"fc.bias", 784}};
  for (const auto& [name, f] : fan_in) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(f));
    const ParamSlot& s = by.at(name);
    EXPECT_EQ(s.fan_in, f) << name;
    EXPECT_LE(max_of(p, s), bound) << name;
    EXPECT_GE(min_of(p, s), -bound) << name;
    if (s.numel() >= 100) {  // the draws fill the interval
      EXPECT_GT(max_of(p, s), 0.9 * bound) << name;
      EXPECT_LT(min_of(p, s), -0.9 * bound) << name;
    }
  }
  for (const char* bn : {"bn1", "bn2"}) {
    const ParamSlot& w = by.at(std::string(bn) + ".weight");
    const ParamSlot& b = by.at(std::string(bn) + ".bias");
    EXPECT_EQ(min_of(p, w), 1.0);
    EXPECT_EQ(max_of(p, w), 1.0);
    EXPECT_EQ(min_of(p, b), 0.0);
    EXPECT_EQ(max_of(p, b), 0.0);
  }

  auto e = load("embed", "seeded");
  auto q = e->init(3);
  const ParamSlot& emb = e->slots()[0];
  ASSERT_EQ(emb.name, "emb.weight");
  ASSERT_EQ(emb.shape, (std::vector<int64_t>{10, 4}));
  for (int k = 0; k < 4; ++k) EXPECT_EQ(q[static_cast<size_t>(emb.offset + k)], 0.f) << "padding_idx row";
  double sq = 0;
  for (int64_t k = 4; k < emb.numel(); ++k)
    sq += q[static_cast<size_t>(emb.offset + k)] * q[static_cast<size_t>(emb.offset + k)];
  EXPECT_GT(sq / 36, 0.2) << "N(0, 1) draws";
  EXPECT_LT(sq / 36, 3.0) << "N(0, 1) draws";
  EXPECT_GT(max_of(q, emb), 0.3);
  for (const auto& s : e->slots()) {
    if (s.name == "norm.weight") EXPECT_EQ(min_of(q, s), 1.0);
    if (s.name == "norm.bias") EXPECT_EQ(max_of(q, s), 0.0);
  }
}

// A parameter of the model's own class has no default to redraw: a
// ConfigError naming model.init, the parameter and its type, suggesting
// init: file (with which the same file is fine).
TEST(Seeded, UnknownModuleTypeIsAConfigError) {
  try {
    load("custom_param", "seeded");
    FAIL() << "seeded init of a custom parameter";
  } catch (const ConfigError& e) {
    const std::string w = e.what();
    EXPECT_EQ(e.key(), "model.init");
    EXPECT_NE(w.find("'temperature'"), std::string::npos) << w;
    EXPECT_NE(w.find("__torch__."), std::string::npos) << w;
    EXPECT_NE(w.find("CustomParam"), std::string::npos) << w;
    EXPECT_NE(w.find("init: file"), std::string::npos) << w;
  }
  EXPECT_EQ(load("custom_param")->init_source(), "file");
}

// BatchNorm's running statistics: named_buffers() order, the file's values
// at load, updated by training-mode forwards (in place: the same tensors),
// not by evaluation-mode ones, and restored by reset_buffers().
TEST(Buffers, FoundUpdatedAndReset) {
  auto m = load("cnn_bn");
  const Reference r = reference("cnn_bn", 10);
  EXPECT_EQ(m->buffer_names(), r.buffer_names);
  EXPECT_EQ(m->buffer_names(),
            (std::vector<std::string>{"bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
                                      "bn2.running_mean", "bn2.running_var", "bn2.num_batches_tracked"}));
  EXPECT_TRUE(at::equal(buffers_of(*m), r.buffers));
  EXPECT_EQ(m->buffers()[2].item<int64_t>(), 3) << "the file's num_batches_tracked";
  const auto live = m->buffers();
  at::Tensor flat = flat_of(*m, 0);

  m->set_training(false);
  at::Tensor eval_out = m->forward(flat, r.x);
  EXPECT_TRUE(at::equal(buffers_of(*m), r.buffers)) << "evaluation mode changed the buffers";

  m->set_training(true);
  at::Tensor train_out = m->forward(flat, r.x);
  m->forward(flat, r.x);
  EXPECT_FALSE(at::equal(buffers_of(*m), r.buffers));
  EXPECT_EQ(m->buffers()[2].item<int64_t>(), 5);
  EXPECT_FALSE(at::allclose(eval_out, train_out)) << "BatchNorm: batch statistics vs running statistics";
  for (size_t i = 0; i < live.size(); ++i)
    EXPECT_EQ(m->buffers()[i].data_ptr(), live[i].data_ptr()) << m->buffer_names()[i] << " was replaced, not updated";

  m->reset_buffers();
  EXPECT_TRUE(at::equal(buffers_of(*m), r.buffers));
  m->set_training(false);
  EXPECT_TRUE(at::equal(m->forward(flat, r.x), eval_out));
}

// The buffers are the live tensors: writing them in place (as the trainer
// averages or restores them) changes what evaluation computes.
TEST(Buffers, WritesInPlaceReachTheModule) {
  auto m = load("cnn_bn");
  at::Tensor flat = flat_of(*m, 0);
  at::Tensor x = at::randn({3, 1, 28, 28});
  m->set_training(false);
  at::Tensor before = m->forward(flat, x);
  {
    at::NoGradGuard no_grad;
    m->buffers()[0].add_(0.5);  // bn1.running_mean
  }
  EXPECT_FALSE(at::allclose(m->forward(flat, x), before));
  m->reset_buffers();
  EXPECT_TRUE(at::equal(m->forward(flat, x), before));
}

// init: seeded starts BatchNorm from its defaults: running_mean 0,
// running_var 1, num_batches_tracked 0 (the file's are not).
TEST(Buffers, SeededStartsFromBatchNormDefaults) {
  auto m = load("cnn_bn", "seeded");
  auto check_defaults = [&] {
    const auto names = m->buffer_names();
    const auto bufs = m->buffers();
    for (size_t i = 0; i < bufs.size(); ++i) {
      const double want = names[i].find("running_var") != std::string::npos ? 1.0 : 0.0;
      EXPECT_EQ(bufs[i].to(at::kDouble).min().item<double>(), want) << names[i];
      EXPECT_EQ(bufs[i].to(at::kDouble).max().item<double>(), want) << names[i];
    }
  };
  check_defaults();
  m->set_training(true);
  m->forward(flat_of(*m, 1), at::randn({4, 1, 28, 28}));
  EXPECT_EQ(m->buffers()[2].item<int64_t>(), 1);
  m->reset_buffers();
  check_defaults();
}

TEST(Modes, DropoutIsActiveOnlyInTraining) {
  auto m = load("dropout");
  const Reference r = reference("dropout", 10);
  at::Tensor flat = flat_of(*m, 0);
  EXPECT_TRUE(m->buffer_names().empty());
  m->set_training(true);
  at::manual_seed(1);
  at::Tensor a = m->forward(flat, r.x);
  at::Tensor b = m->forward(flat, r.x);
  EXPECT_FALSE(at::equal(a, b)) << "two training-mode forwards drew the same dropout mask";
  at::manual_seed(1);
  EXPECT_TRUE(at::equal(m->forward(flat, r.x), a)) << "dropout follows LibTorch's generator";
  m->set_training(false);
  EXPECT_TRUE(at::equal(m->forward(flat, r.x), r.out_eval));
  EXPECT_TRUE(at::equal(m->forward(flat, r.x), r.out_eval));
}

// A module saved in evaluation mode still starts in training mode.
TEST(Modes, ModelsStartInTrainingMode) {
  test::TempDir tmp;
  auto plain = torch::jit::load(file("dropout.pt"));
  plain.eval();
  plain.save(tmp.file("eval.pt"));
  ModelSpec s = ts("dropout");
  s.path = tmp.file("eval.pt");
  auto m = make_model("s.yaml", s, {{1, 28, 28}, 10}, at::kCPU);
  at::Tensor flat = flat_of(*m, 0);
  at::Tensor x = at::randn({4, 1, 28, 28});
  EXPECT_FALSE(at::equal(m->forward(flat, x), m->forward(flat, x)));
}

// Files that are not TorchScript: a DataError naming the file and
// model.path, saying how to save one, with the loader's first line.
TEST(BadFiles, NotTorchScriptIsADataError) {
  test::TempDir tmp;
  const std::string text = tmp.file("model.txt");
  std::ofstream(text) << "this is not a model\n";
  const std::string hdf5 = tmp.file("model.h5");
  {
    h5::Handle f = h5::create_file(hdf5);
    h5::write_scalar(f.id(), "x", 1);
  }
  const std::string empty = tmp.file("empty.pt");
  std::ofstream(empty).close();
  for (const std::string& path : {text, hdf5, empty, file("state_dict.pt")}) {
    ModelSpec s = ts("mlp");
    s.path = path;
    try {
      make_model("s.yaml", s, {{1, 28, 28}, 10}, at::kCPU);
      FAIL() << path << " loaded";
    } catch (const DataError& e) {
      const std::string w = e.what();
      expect_error_names_file(w, path);
      EXPECT_NE(w.find("not a TorchScript file"), std::string::npos) << w;
      EXPECT_NE(w.find("torch.jit.script"), std::string::npos) << w;
      EXPECT_EQ(w.find('\n'), std::string::npos) << "more than the loader's first line: " << w;
    }
  }
}

template <typename Fn>
std::string data_error(Fn&& fn) {
  try {
    fn();
  } catch (const DataError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no DataError";
  return "";
}

TEST(BadFiles, UntrainableParametersAreADataError) {
  std::string w = data_error([] { load("double"); });
  expect_error_names_file(w, file("double.pt"));
  EXPECT_NE(w.find("float32"), std::string::npos) << w;
  w = data_error([] { load("tied"); });
  expect_error_names_file(w, file("tied.pt"));
  EXPECT_NE(w.find("tied"), std::string::npos) << w;
  EXPECT_NE(w.find("fc.weight"), std::string::npos) << w;
  w = data_error([] { load("frozen"); });
  expect_error_names_file(w, file("frozen.pt"));
  EXPECT_NE(w.find("requires_grad=False"), std::string::npos) << w;
  EXPECT_NE(w.find("register_buffer"), std::string::npos) << w;
}

// A forward that raises (a shape assertion here) or returns something other
// than a tensor: a DataError naming the file and model.path. A tensor of
// another shape is returned as it is: the caller checks it against the data.
TEST(BadFiles, ForwardFailuresAreDataErrors) {
  at::Tensor x = at::randn({2, 1, 28, 28});
  auto throws = load("throws");
  std::string w = data_error([&] { throws->forward(flat_of(*throws, 0), x); });
  expect_error_names_file(w, file("throws.pt"));
  EXPECT_NE(w.find("3-channel"), std::string::npos) << w;
  EXPECT_NE(w.find("[2, 1, 28, 28]"), std::string::npos) << w;
  EXPECT_TRUE(torch::jit::getGraphExecutorOptimize()) << "a failed forward left the optimizations off";

  auto tuple = load("tuple_output");
  w = data_error([&] { tuple->forward(flat_of(*tuple, 0), x); });
  expect_error_names_file(w, file("tuple_output.pt"));
  EXPECT_NE(w.find("Tuple"), std::string::npos) << w;

  auto bad = load("bad_output");
  EXPECT_EQ(bad->forward(flat_of(*bad, 0), x).sizes().vec(), (std::vector<int64_t>{2}));
}

}  // namespace
}  // namespace bs
