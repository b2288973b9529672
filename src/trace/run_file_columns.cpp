#include "trace/run_file_columns.h"

#include <cstring>
#include <stdexcept>

#include "trace/run_file.h"

namespace bs {

void ColumnValues::put(ColumnType type, const void* v, size_t size) {
  // A table entry whose getter brings another type than its column declares
  // is a bug in the table, caught by the first append of any test.
  if (type != type_)
    throw std::logic_error(std::string("run file column of type ") + column_type_name(type_) + " given a " +
                           column_type_name(type) + " value");
  const auto* p = static_cast<const unsigned char*>(v);
  bytes_.insert(bytes_.end(), p, p + size);
  ++count_;
}

void ColumnValues::add(const std::vector<int32_t>& v) {
  for (int32_t x : v) add(x);
}

void ColumnValues::add(const std::vector<int64_t>& v) {
  for (int64_t x : v) add(x);
}

void ColumnValues::add(const std::vector<float>& v) {
  for (float x : v) add(x);
}

void ColumnValues::add(const std::vector<std::string>& v) {
  if (type_ != ColumnType::Str) throw std::logic_error("run file column given strings for numbers");
  strings_.insert(strings_.end(), v.begin(), v.end());
  count_ += static_cast<int64_t>(v.size());
}

std::vector<int32_t> ColumnValues::ints() const {
  if (type_ != ColumnType::I32) throw std::logic_error("run file column: ints() of a non-int32 column");
  std::vector<int32_t> out(static_cast<size_t>(count_));
  if (!out.empty()) std::memcpy(out.data(), bytes_.data(), bytes_.size());
  return out;
}

int64_t ColumnValues::first_int64() const {
  if (type_ != ColumnType::I64 || count_ < 1) throw std::logic_error("run file column: no int64 value");
  int64_t v = 0;
  std::memcpy(&v, bytes_.data(), sizeof v);
  return v;
}

namespace {
using T = ColumnType;
using W = ColumnWidth;
using Hd = const RunFileHeader&;
using St = const StepRecord&;
using Ev = const EvalRecord&;
using Out = ColumnValues&;

RunFileColumn header_col(const char* name, T type, W width, const char* doc, void (*f)(Hd, Out)) {
  return {"layout", name, type, ColumnRows::Header, width, false, 0, doc, f, nullptr, nullptr, 0};
}

RunFileColumn single_col(const char* group, const char* name, T type, int64_t initial, const char* doc) {
  return {group, name, type, ColumnRows::Single, W::None, false, 1, doc, nullptr, nullptr, nullptr, initial};
}

RunFileColumn step_col(const char* group, const char* name, T type, W width, int64_t chunk, const char* doc,
                       void (*f)(St, Out), bool per_layer = false) {
  return {group, name, type, ColumnRows::Step, width, per_layer, chunk, doc, nullptr, f, nullptr, 0};
}

RunFileColumn eval_col(const char* name, T type, const char* doc, void (*f)(Ev, Out)) {
  return {"eval", name, type, ColumnRows::Eval, W::None, false, 64, doc, nullptr, nullptr, f, 0};
}

std::vector<RunFileColumn> layout_columns() {
  return {
      header_col("world_ranks", T::I32, W::Ranks, "world rank of each group rank",
                 [](Hd h, Out v) { v.add(h.world_ranks); }),
      header_col("hosts", T::Str, W::Ranks, "host name of each rank", [](Hd h, Out v) { v.add(h.hosts); }),
      header_col("devices", T::Str, W::Ranks, "device of each rank", [](Hd h, Out v) { v.add(h.devices); }),
      header_col("batch_per_rank", T::I32, W::Ranks, "B_i, each rank's batch",
                 [](Hd h, Out v) { v.add(h.batch_per_rank); }),
      header_col("batch_micro", T::I32, W::Micro, "micro-batch sizes, rank-major",
                 [](Hd h, Out v) { v.add(h.batch_micro); }),
      // All layers, even without per_layer: the model's tensors, for readers.
      header_col("layers", T::Str, W::Layers, "parameter tensors in flat-buffer order",
                 [](Hd h, Out v) { v.add(h.layers); }),
      header_col("layer_numel", T::I32, W::Layers, "their sizes", [](Hd h, Out v) { v.add(h.layer_numel); }),
      header_col("global_batch", T::I64, W::None, "B", [](Hd h, Out v) { v.add(h.global_batch); }),
      header_col("train_size", T::I64, W::None, "N, training samples", [](Hd h, Out v) { v.add(h.train_size); }),
      header_col("test_size", T::I64, W::None, "validation samples", [](Hd h, Out v) { v.add(h.test_size); }),
      header_col("sharpness_subset", T::I64, W::Subset, "training-set indices of eval.sharpness's subset",
                 [](Hd h, Out v) { v.add(h.sharpness_subset); }),
  };
}

// Chunks: 1024 rows for a 1-d step column, 256 for a [T, n] or [T, L] one and
// 64 for the wide [T, K*L], so a chunk stays a few KiB to a few hundred KiB.
std::vector<RunFileColumn> train_columns() {
  return {
      step_col("train", "step", T::I64, W::None, 1024, "1-based step", [](St r, Out v) { v.add(r.step); }),
      step_col("train", "samples", T::I64, W::None, 1024, "samples seen after this step, s * B",
               [](St r, Out v) { v.add(r.samples); }),
      step_col("train", "epoch", T::I32, W::None, 1024, "0-based epoch of the step's batch",
               [](St r, Out v) { v.add(r.epoch); }),
      step_col("train", "lr", T::F64, W::None, 1024, "learning rate of this step", [](St r, Out v) { v.add(r.lr); }),
      step_col("train", "loss", T::F64, W::None, 1024, "global mean loss of the step's batch",
               [](St r, Out v) { v.add(r.loss); }),
      step_col("train", "loss_rank", T::F32, W::Ranks, 256, "mean loss of each rank's slice",
               [](St r, Out v) { v.add(r.loss_rank); }),
      step_col("train", "wall_s", T::F64, W::None, 1024, "seconds since the run started",
               [](St r, Out v) { v.add(r.wall_s); }),
      step_col("train", "step_ms", T::F32, W::None, 1024, "wall time of the step in ms",
               [](St r, Out v) { v.add(r.step_ms); }),
  };
}

std::vector<RunFileColumn> gns_columns() {
  return {
      step_col("gns", "sqnorm_local", T::F32, W::Ranks, 256, "|g_i|^2 per rank, before reduction",
               [](St r, Out v) { v.add(r.sqnorm_local); }),
      // With m = 1 the trainer leaves sqnorm_micro empty: the ranks are the
      // micro-batches.
      step_col("gns", "sqnorm_micro", T::F32, W::Micro, 256, "|g_k|^2 per micro-batch",
               [](St r, Out v) { v.add(r.sqnorm_micro.empty() ? r.sqnorm_local : r.sqnorm_micro); }),
      step_col(
          "gns", "sqnorm_layer_micro", T::F32, W::MicroLayers, 64, "|g_k|^2 per micro-batch and layer",
          [](St r, Out v) { v.add(r.layer_micro); }, true),
      step_col(
          "gns", "sqnorm_layer_global", T::F32, W::Layers, 256, "|G|^2 per layer",
          [](St r, Out v) { v.add(r.layer_global); }, true),
      step_col("gns", "sqnorm_global", T::F32, W::None, 1024, "|G|^2 after reduction",
               [](St r, Out v) { v.add(r.sqnorm_global); }),
      step_col("gns", "g2_est", T::F64, W::None, 1024, "unbiased estimate of |G_true|^2",
               [](St r, Out v) { v.add(r.g2_est); }),
      step_col("gns", "trsigma_est", T::F64, W::None, 1024, "unbiased estimate of tr(Sigma)",
               [](St r, Out v) { v.add(r.trsigma_est); }),
      step_col("gns", "b_simple", T::F64, W::None, 1024, "EMA(trsigma_est) / EMA(g2_est)",
               [](St r, Out v) { v.add(r.b_simple); }),
  };
}

std::vector<RunFileColumn> eval_columns() {
  return {
      eval_col("step", T::I64, "steps done when evaluated", [](Ev r, Out v) { v.add(r.step); }),
      eval_col("samples", T::I64, "training samples seen, step * B", [](Ev r, Out v) { v.add(r.samples); }),
      eval_col("epoch", T::F64, "samples / N", [](Ev r, Out v) { v.add(r.epoch); }),
      eval_col("val_loss", T::F64, "mean loss over the test split", [](Ev r, Out v) { v.add(r.val_loss); }),
      eval_col("val_acc", T::F64, "accuracy over the test split", [](Ev r, Out v) { v.add(r.val_acc); }),
      eval_col("train_loss", T::F64, "mean loss over the fixed training subset",
               [](Ev r, Out v) { v.add(r.train_loss); }),
      eval_col("train_acc", T::F64, "accuracy over the fixed training subset", [](Ev r, Out v) { v.add(r.train_acc); }),
      eval_col("sharpness", T::F64, "top Hessian eigenvalue of the subset's mean loss, or NaN",
               [](Ev r, Out v) { v.add(r.sharpness); }),
      eval_col("sharpness_iterations", T::I32, "Hessian-vector products it took, or 0",
               [](Ev r, Out v) { v.add(r.sharpness_iterations); }),
      eval_col("sharpness_residual", T::F64, "|Hv - lambda v| / |lambda v| at the end, or NaN",
               [](Ev r, Out v) { v.add(r.sharpness_residual); }),
  };
}

std::vector<RunFileColumn> all_columns() {
  std::vector<RunFileColumn> c = layout_columns();
  // Extendable, not fixed: under SWMR only raw data may change, and the
  // status must, so it is data, not an attribute.
  c.push_back(single_col("status", "code", T::I32, 0, "0 running, 1 completed, 2 diverged, 3 failed, 4 preempted"));
  c.push_back(single_col("status", "step", T::I64, 0, "the last step written"));
  for (const auto& part : {train_columns(), gns_columns(), eval_columns()}) c.insert(c.end(), part.begin(), part.end());
  c.push_back(single_col("target", "step", T::I64, -1, "first evaluated step meeting the target, or -1"));
  c.push_back(single_col("target", "samples", T::I64, -1, "step * B, or -1"));
  c.push_back({"final", "params", T::F32, ColumnRows::Final, W::Params, false, 65536,
               "the parameters at the end of a completed run, flat", nullptr, nullptr, nullptr, 0});
  return c;
}
}  // namespace

const std::vector<RunFileColumn>& run_file_columns() {
  static const std::vector<RunFileColumn> columns = all_columns();
  return columns;
}

const std::vector<RunFileGroup>& run_file_groups() {
  static const std::vector<RunFileGroup> groups = {
      {"layout", nullptr, nullptr}, {"status", "codes", "0 running, 1 completed, 2 diverged, 3 failed, 4 preempted"},
      {"train", nullptr, nullptr},  {"gns", nullptr, nullptr},
      {"eval", nullptr, nullptr},   {"target", nullptr, nullptr},
      {"final", nullptr, nullptr},
  };
  return groups;
}

int64_t column_width(const RunFileColumn& c, const ColumnDims& d) {
  switch (c.width) {
    case W::None:
      return 0;
    case W::Ranks:
      return d.ranks;
    case W::Micro:
      return d.micro;
    case W::Layers:
      return d.layers;
    case W::MicroLayers:
      return d.micro * d.layers;
    case W::Subset:
    case W::Params:
      return 0;  // a 1-d dataset of its own length
  }
  return 0;
}

bool column_present(const RunFileColumn& c, bool per_layer) { return per_layer || !c.per_layer; }

std::vector<std::string> column_shape(const RunFileColumn& c) {
  std::vector<std::string> s;
  if (c.rows == ColumnRows::Single) s.push_back("1");
  if (c.rows == ColumnRows::Step) s.push_back("T");
  if (c.rows == ColumnRows::Eval) s.push_back("E");
  const char* width[] = {nullptr, "n", "K", "L", "K*L", "S", "P"};
  if (const char* w = width[static_cast<int>(c.width)]) s.push_back(w);
  return s;
}

const char* column_type_name(ColumnType t) {
  switch (t) {
    case T::I32:
      return "int32";
    case T::I64:
      return "int64";
    case T::F32:
      return "float32";
    case T::F64:
      return "float64";
    case T::Str:
      return "str";
  }
  return "?";
}

}  // namespace bs
