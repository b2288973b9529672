#include "trace/run_file.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "util/errors.h"

namespace bs {

namespace {
// Rows are appended column by column from flat vectors; a vector of the wrong
// width would make HDF5 read past it, so widths are checked before writing.
void check_width(const std::vector<float>& v, int64_t width, const char* what, int64_t step) {
  if (static_cast<int64_t>(v.size()) != width)
    throw std::invalid_argument(std::string("run file: step ") + std::to_string(step) + " has " +
                                std::to_string(v.size()) + " values of " + what + ", expected " +
                                std::to_string(width));
}

RunFileHeader with_defaults(RunFileHeader hd) {
  if (hd.batch_micro.empty()) hd.batch_micro = hd.batch_per_rank;  // m = 1
  if (hd.layer_numel.size() != hd.layers.size())
    throw std::invalid_argument("run file header: layers and layer_numel differ in length");
  if (hd.per_layer && hd.layers.empty()) throw std::invalid_argument("run file header: per_layer without layers");
  return hd;
}
}  // namespace

RunFile::RunFile(const std::string& path, const RunFileHeader& header, double flush_seconds)
    : RunFile(path, with_defaults(header), flush_seconds, 0) {}

RunFile::RunFile(const std::string& path, const RunFileHeader& hd, double flush_seconds, int)
    : path_(path),
      ranks_(static_cast<int>(hd.batch_per_rank.size())),
      micro_(static_cast<int>(hd.batch_micro.size())),
      layers_(hd.per_layer ? static_cast<int>(hd.layers.size()) : 0),
      flush_seconds_(flush_seconds) {
  using h5::Type;
  file_ = h5::create_file(path);
  const hid_t f = file_.id();
  h5::write_attr(f, "schema", std::string("batchscope-run"));
  h5::write_attr(f, "schema_version", kSchemaVersion);
  for (const auto& kv : hd.str_attrs) h5::write_attr(f, kv.first, kv.second);
  for (const auto& kv : hd.int_attrs) h5::write_attr(f, kv.first, kv.second);
  for (const auto& kv : hd.float_attrs) h5::write_attr(f, kv.first, kv.second);

  {
    h5::Handle g = h5::create_group(f, "layout");
    h5::write_dataset(g.id(), "world_ranks", hd.world_ranks);
    h5::write_dataset(g.id(), "hosts", hd.hosts);
    h5::write_dataset(g.id(), "devices", hd.devices);
    h5::write_dataset(g.id(), "batch_per_rank", hd.batch_per_rank);
    h5::write_dataset(g.id(), "batch_micro", hd.batch_micro);
    h5::write_dataset(g.id(), "layers", hd.layers);
    h5::write_dataset(g.id(), "layer_numel", hd.layer_numel);
    h5::write_scalar(g.id(), "global_batch", hd.global_batch);
    h5::write_scalar(g.id(), "train_size", hd.train_size);
    h5::write_scalar(g.id(), "test_size", hd.test_size);
  }
  {
    h5::Handle g = h5::create_group(f, "status");
    h5::write_attr(g.id(), "codes", std::string("0 running, 1 completed, 2 diverged, 3 failed, 4 preempted"));
    // Extendable, not fixed: under SWMR only raw data may change, and the
    // status must, so it is data, not an attribute.
    status_code_ = h5::create_extendable(g.id(), "code", Type::I32, 0, 1);
    status_step_ = h5::create_extendable(g.id(), "step", Type::I64, 0, 1);
  }
  const int64_t n = ranks_, chunk = 1024;
  {
    h5::Handle g = h5::create_group(f, "train");
    t_step_ = h5::create_extendable(g.id(), "step", Type::I64, 0, chunk);
    t_samples_ = h5::create_extendable(g.id(), "samples", Type::I64, 0, chunk);
    t_epoch_ = h5::create_extendable(g.id(), "epoch", Type::I32, 0, chunk);
    t_lr_ = h5::create_extendable(g.id(), "lr", Type::F64, 0, chunk);
    t_loss_ = h5::create_extendable(g.id(), "loss", Type::F64, 0, chunk);
    t_loss_rank_ = h5::create_extendable(g.id(), "loss_rank", Type::F32, n, 256);
    t_wall_ = h5::create_extendable(g.id(), "wall_s", Type::F64, 0, chunk);
    t_step_ms_ = h5::create_extendable(g.id(), "step_ms", Type::F32, 0, chunk);
  }
  {
    h5::Handle g = h5::create_group(f, "gns");
    g_local_ = h5::create_extendable(g.id(), "sqnorm_local", Type::F32, n, 256);
    g_micro_ = h5::create_extendable(g.id(), "sqnorm_micro", Type::F32, micro_, 256);
    if (layers_ > 0) {
      g_layer_micro_ = h5::create_extendable(g.id(), "sqnorm_layer_micro", Type::F32, int64_t{micro_} * layers_, 64);
      g_layer_global_ = h5::create_extendable(g.id(), "sqnorm_layer_global", Type::F32, layers_, 256);
    }
    g_global_ = h5::create_extendable(g.id(), "sqnorm_global", Type::F32, 0, chunk);
    g_g2_ = h5::create_extendable(g.id(), "g2_est", Type::F64, 0, chunk);
    g_tr_ = h5::create_extendable(g.id(), "trsigma_est", Type::F64, 0, chunk);
    g_bsimple_ = h5::create_extendable(g.id(), "b_simple", Type::F64, 0, chunk);
  }
  {
    h5::Handle g = h5::create_group(f, "eval");
    e_step_ = h5::create_extendable(g.id(), "step", Type::I64, 0, 64);
    e_samples_ = h5::create_extendable(g.id(), "samples", Type::I64, 0, 64);
    e_epoch_ = h5::create_extendable(g.id(), "epoch", Type::F64, 0, 64);
    e_vloss_ = h5::create_extendable(g.id(), "val_loss", Type::F64, 0, 64);
    e_vacc_ = h5::create_extendable(g.id(), "val_acc", Type::F64, 0, 64);
    e_tloss_ = h5::create_extendable(g.id(), "train_loss", Type::F64, 0, 64);
    e_tacc_ = h5::create_extendable(g.id(), "train_acc", Type::F64, 0, 64);
  }
  {
    h5::Handle g = h5::create_group(f, "target");
    target_step_ = h5::create_extendable(g.id(), "step", Type::I64, 0, 1);
    target_samples_ = h5::create_extendable(g.id(), "samples", Type::I64, 0, 1);
    const int64_t none = -1;
    h5::write_first(target_step_.id(), Type::I64, &none);
    h5::write_first(target_samples_.id(), Type::I64, &none);
  }
  set_status(RunStatus::Running, 0);
  h5::start_swmr(f);
  flush();
}

RunFile::~RunFile() {
  try {
    if (file_.valid()) h5::flush(file_.id());
  } catch (...) {
    // A destructor must not throw; the file keeps what was flushed before.
  }
}

void RunFile::append(const std::vector<StepRecord>& rows) {
  using h5::Type;
  const int64_t T = static_cast<int64_t>(rows.size());
  if (T == 0) return;
  std::vector<int64_t> step, samples;
  std::vector<int32_t> epoch;
  std::vector<double> lr, loss, wall, g2, tr, bs;
  std::vector<float> step_ms, loss_rank, local, micro, global, layer_micro, layer_global;
  for (const auto& r : rows) {
    check_width(r.loss_rank, ranks_, "loss_rank", r.step);
    check_width(r.sqnorm_local, ranks_, "sqnorm_local", r.step);
    check_width(r.sqnorm_micro.empty() ? r.sqnorm_local : r.sqnorm_micro, micro_, "sqnorm_micro", r.step);
    check_width(r.layer_micro, int64_t{micro_} * layers_, "sqnorm_layer_micro", r.step);
    check_width(r.layer_global, layers_, "sqnorm_layer_global", r.step);
    step.push_back(r.step);
    samples.push_back(r.samples);
    epoch.push_back(r.epoch);
    lr.push_back(r.lr);
    loss.push_back(r.loss);
    wall.push_back(r.wall_s);
    step_ms.push_back(r.step_ms);
    loss_rank.insert(loss_rank.end(), r.loss_rank.begin(), r.loss_rank.end());
    local.insert(local.end(), r.sqnorm_local.begin(), r.sqnorm_local.end());
    const auto& mic = r.sqnorm_micro.empty() ? r.sqnorm_local : r.sqnorm_micro;  // m = 1
    micro.insert(micro.end(), mic.begin(), mic.end());
    layer_micro.insert(layer_micro.end(), r.layer_micro.begin(), r.layer_micro.end());
    layer_global.insert(layer_global.end(), r.layer_global.begin(), r.layer_global.end());
    global.push_back(r.sqnorm_global);
    g2.push_back(r.g2_est);
    tr.push_back(r.trsigma_est);
    bs.push_back(r.b_simple);
  }
  h5::append(t_step_.id(), Type::I64, step.data(), T, 0);
  h5::append(t_samples_.id(), Type::I64, samples.data(), T, 0);
  h5::append(t_epoch_.id(), Type::I32, epoch.data(), T, 0);
  h5::append(t_lr_.id(), Type::F64, lr.data(), T, 0);
  h5::append(t_loss_.id(), Type::F64, loss.data(), T, 0);
  h5::append(t_loss_rank_.id(), Type::F32, loss_rank.data(), T, ranks_);
  h5::append(t_wall_.id(), Type::F64, wall.data(), T, 0);
  h5::append(t_step_ms_.id(), Type::F32, step_ms.data(), T, 0);
  h5::append(g_local_.id(), Type::F32, local.data(), T, ranks_);
  h5::append(g_micro_.id(), Type::F32, micro.data(), T, micro_);
  if (layers_ > 0) {
    h5::append(g_layer_micro_.id(), Type::F32, layer_micro.data(), T, int64_t{micro_} * layers_);
    h5::append(g_layer_global_.id(), Type::F32, layer_global.data(), T, layers_);
  }
  h5::append(g_global_.id(), Type::F32, global.data(), T, 0);
  h5::append(g_g2_.id(), Type::F64, g2.data(), T, 0);
  h5::append(g_tr_.id(), Type::F64, tr.data(), T, 0);
  h5::append(g_bsimple_.id(), Type::F64, bs.data(), T, 0);
  int64_t last = rows.back().step;
  h5::write_first(status_step_.id(), Type::I64, &last);
}

void RunFile::append(const EvalRecord& r) {
  using h5::Type;
  h5::append(e_step_.id(), Type::I64, &r.step, 1, 0);
  h5::append(e_samples_.id(), Type::I64, &r.samples, 1, 0);
  h5::append(e_epoch_.id(), Type::F64, &r.epoch, 1, 0);
  h5::append(e_vloss_.id(), Type::F64, &r.val_loss, 1, 0);
  h5::append(e_vacc_.id(), Type::F64, &r.val_acc, 1, 0);
  h5::append(e_tloss_.id(), Type::F64, &r.train_loss, 1, 0);
  h5::append(e_tacc_.id(), Type::F64, &r.train_acc, 1, 0);
}

void RunFile::set_status(RunStatus status, int64_t step) {
  int32_t code = static_cast<int32_t>(status);
  h5::write_first(status_code_.id(), h5::Type::I32, &code);
  h5::write_first(status_step_.id(), h5::Type::I64, &step);
}

std::vector<RunFile::Column> RunFile::columns() const {
  using h5::Type;
  const int64_t n = ranks_, K = micro_;
  std::vector<Column> c = {
      {"/train/step", t_step_.id(), Type::I64, 0, false},
      {"/train/samples", t_samples_.id(), Type::I64, 0, false},
      {"/train/epoch", t_epoch_.id(), Type::I32, 0, false},
      {"/train/lr", t_lr_.id(), Type::F64, 0, false},
      {"/train/loss", t_loss_.id(), Type::F64, 0, false},
      {"/train/loss_rank", t_loss_rank_.id(), Type::F32, n, false},
      {"/train/wall_s", t_wall_.id(), Type::F64, 0, false},
      {"/train/step_ms", t_step_ms_.id(), Type::F32, 0, false},
      {"/gns/sqnorm_local", g_local_.id(), Type::F32, n, false},
      {"/gns/sqnorm_micro", g_micro_.id(), Type::F32, K, false},
      {"/gns/sqnorm_global", g_global_.id(), Type::F32, 0, false},
      {"/gns/g2_est", g_g2_.id(), Type::F64, 0, false},
      {"/gns/trsigma_est", g_tr_.id(), Type::F64, 0, false},
      {"/gns/b_simple", g_bsimple_.id(), Type::F64, 0, false},
      {"/eval/step", e_step_.id(), Type::I64, 0, true},
      {"/eval/samples", e_samples_.id(), Type::I64, 0, true},
      {"/eval/epoch", e_epoch_.id(), Type::F64, 0, true},
      {"/eval/val_loss", e_vloss_.id(), Type::F64, 0, true},
      {"/eval/val_acc", e_vacc_.id(), Type::F64, 0, true},
      {"/eval/train_loss", e_tloss_.id(), Type::F64, 0, true},
      {"/eval/train_acc", e_tacc_.id(), Type::F64, 0, true},
  };
  if (layers_ > 0) {
    c.push_back({"/gns/sqnorm_layer_micro", g_layer_micro_.id(), Type::F32, K * layers_, false});
    c.push_back({"/gns/sqnorm_layer_global", g_layer_global_.id(), Type::F32, layers_, false});
  }
  return c;
}

std::unique_ptr<RunFile> RunFile::resume(const std::string& path, const RunFileHeader& header, double flush_seconds,
                                         int64_t train_rows, int64_t eval_rows, int64_t target_step,
                                         int64_t target_samples) {
  const std::string tmp = path + ".resume.tmp";
  std::unique_ptr<RunFile> rf(new RunFile(tmp, with_defaults(header), flush_seconds, 0));
  {
    h5::Handle old = h5::open_file_read(path);
    for (const auto& col : rf->columns()) {
      h5::Handle d = h5::open_dataset(old.id(), col.name);
      const int64_t want = col.eval ? eval_rows : train_rows;
      const int64_t have = h5::rows_of(d.id());
      if (have < want)
        throw std::invalid_argument(path + ": " + col.name + " has " + std::to_string(have) +
                                    " rows, but the checkpoint is at " + std::to_string(want) +
                                    "; the run file lost rows it had flushed before the checkpoint");
      const size_t width = col.type == h5::Type::I32 || col.type == h5::Type::F32 ? 4 : 8;
      std::vector<unsigned char> buf(static_cast<size_t>(want * std::max<int64_t>(col.cols, 1)) * width);
      h5::read_rows(d.id(), col.type, want, col.cols, buf.data());
      h5::append(col.dset, col.type, buf.data(), want, col.cols);
    }
  }
  if (target_step >= 0) rf->set_target_reached(target_step, target_samples);
  rf->set_status(RunStatus::Running, train_rows);
  rf->flush();
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::invalid_argument("cannot replace " + path + " with the resumed run file " + tmp);
  rf->path_ = path;
  return rf;
}

void RunFile::set_target_reached(int64_t step, int64_t samples) {
  h5::write_first(target_step_.id(), h5::Type::I64, &step);
  h5::write_first(target_samples_.id(), h5::Type::I64, &samples);
}

void RunFile::maybe_flush() {
  auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_flush_).count() >= flush_seconds_) flush();
}

void RunFile::flush() {
  h5::flush(file_.id());
  last_flush_ = std::chrono::steady_clock::now();
}

namespace {
// Reads of a finished run for the study runner. HDF5's own message names the
// dataset but not the file; with many runs in one study the file matters.
template <class F>
auto reading(const std::string& path, F&& read) {
  try {
    h5::Handle f = h5::open_file_read(path);
    return read(f.id());
  } catch (const LibraryError& e) {
    const std::string what = e.what();
    if (what.find(path) != std::string::npos) throw;
    throw LibraryError(path + ": " + what);
  }
}

int64_t first_int(hid_t file, const char* name) {
  h5::Handle d = h5::open_dataset(file, name);
  int64_t v = -1;
  h5::read_rows(d.id(), h5::Type::I64, 1, 0, &v);
  return v;
}

// Every value of a 1-d dataset as doubles; one NaN when it is empty, so that
// "the last value" of a run that never got there reads as NaN.
std::vector<double> all_values(hid_t file, const char* name) {
  h5::Handle d = h5::open_dataset(file, name);
  const int64_t n = h5::rows_of(d.id());
  std::vector<double> v(static_cast<size_t>(std::max<int64_t>(n, 1)), std::nan(""));
  h5::read_rows(d.id(), h5::Type::F64, n, 0, v.data());
  return v;
}

RunStatus status_code(hid_t file) {
  h5::Handle d = h5::open_dataset(file, "/status/code");
  int32_t code = -1;
  h5::read_rows(d.id(), h5::Type::I32, 1, 0, &code);
  return static_cast<RunStatus>(code);
}
}  // namespace

RunStatus read_run_status(const std::string& path) { return reading(path, status_code); }

RunFileSummary read_run_summary(const std::string& path) {
  return reading(path, [](hid_t f) {
    RunFileSummary s;
    s.status = status_code(f);
    s.steps = first_int(f, "/status/step");
    s.target_step = first_int(f, "/target/step");
    s.val_acc = all_values(f, "/eval/val_acc");
    s.final_train_acc = all_values(f, "/eval/train_acc").back();
    s.wall_s = all_values(f, "/train/wall_s").back();
    return s;
  });
}

}  // namespace bs
