#include "trace/run_file.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "util/errors.h"

namespace bs {

namespace {
// Rows are appended column by column from flat vectors; a vector of the wrong
// width would make HDF5 read past it, so widths are checked before writing.
void check_width(int64_t values, int64_t width, const char* what, int64_t step) {
  if (values != width)
    throw std::invalid_argument(std::string("run file: step ") + std::to_string(step) + " has " +
                                std::to_string(values) + " values of " + what + ", expected " + std::to_string(width));
}

RunFileHeader with_defaults(RunFileHeader hd) {
  if (hd.batch_micro.empty()) hd.batch_micro = hd.batch_per_rank;  // m = 1
  if (hd.layer_numel.size() != hd.layers.size())
    throw std::invalid_argument("run file header: layers and layer_numel differ in length");
  if (hd.per_layer && hd.layers.empty()) throw std::invalid_argument("run file header: per_layer without layers");
  return hd;
}

h5::Type h5_type(ColumnType t) {
  switch (t) {
    case ColumnType::I32:
      return h5::Type::I32;
    case ColumnType::I64:
      return h5::Type::I64;
    case ColumnType::F32:
      return h5::Type::F32;
    case ColumnType::F64:
      return h5::Type::F64;
    case ColumnType::Str:
      break;
  }
  throw std::logic_error("run file: string columns are header datasets only");
}

size_t type_size(ColumnType t) { return t == ColumnType::I32 || t == ColumnType::F32 ? 4 : 8; }

// Where a column is in run_file_columns(); the table is fixed, so a name that
// is not there is a bug, found by the first test that writes a file.
size_t column_index(const char* group, const char* name) {
  const auto& cols = run_file_columns();
  for (size_t i = 0; i < cols.size(); ++i)
    if (std::strcmp(cols[i].group, group) == 0 && std::strcmp(cols[i].name, name) == 0) return i;
  throw std::logic_error(std::string("run file: no column /") + group + "/" + name);
}

// Sets the one element of a /status or /target column. write_first copies
// the column type's size from the pointer, so the value is narrowed first.
void write_single(hid_t dset, ColumnType type, int64_t value) {
  if (type == ColumnType::I32) {
    const int32_t v = static_cast<int32_t>(value);
    h5::write_first(dset, h5::Type::I32, &v);
  } else {
    h5::write_first(dset, h5_type(type), &value);
  }
}

void write_header_dataset(hid_t group, const RunFileColumn& c, const RunFileHeader& hd) {
  ColumnValues v(c.type);
  c.from_header(hd, v);
  if (c.type == ColumnType::Str)
    h5::write_dataset(group, c.name, v.strings());
  else if (c.type == ColumnType::I32)
    h5::write_dataset(group, c.name, v.ints());
  else if (c.type == ColumnType::I64 && c.width == ColumnWidth::None)
    h5::write_scalar(group, c.name, v.first_int64());
  else if (c.type == ColumnType::I64 && c.width == ColumnWidth::Subset)
    h5::append(h5::create_extendable(group, c.name, h5::Type::I64, 0, 4096).id(), h5::Type::I64, v.data(), v.count(),
               0);
  else
    throw std::logic_error(std::string("run file: cannot write header dataset ") + c.name);
}
}  // namespace

RunFile::RunFile(const std::string& path, const RunFileHeader& header, double flush_seconds)
    : RunFile(path, with_defaults(header), flush_seconds, 0) {}

RunFile::RunFile(const std::string& path, const RunFileHeader& hd, double flush_seconds, int)
    : path_(path), flush_seconds_(flush_seconds) {
  dims_.ranks = static_cast<int64_t>(hd.batch_per_rank.size());
  dims_.micro = static_cast<int64_t>(hd.batch_micro.size());
  dims_.layers = hd.per_layer ? static_cast<int64_t>(hd.layers.size()) : 0;
  file_ = h5::create_file(path);
  const hid_t f = file_.id();
  h5::write_attr(f, "schema", std::string("batchscope-run"));
  h5::write_attr(f, "schema_version", kSchemaVersion);
  for (const auto& kv : hd.str_attrs) h5::write_attr(f, kv.first, kv.second);
  for (const auto& kv : hd.int_attrs) h5::write_attr(f, kv.first, kv.second);
  for (const auto& kv : hd.float_attrs) h5::write_attr(f, kv.first, kv.second);
  create(hd);
  h5::start_swmr(f);
  flush();
}

// Every group and dataset, from the column table, before SWMR starts (SWMR
// cannot add objects).
void RunFile::create(const RunFileHeader& hd) {
  const auto& cols = run_file_columns();
  dsets_.resize(cols.size());
  for (const auto& grp : run_file_groups()) {
    h5::Handle g = h5::create_group(file_.id(), grp.name);
    if (grp.attr) h5::write_attr(g.id(), grp.attr, std::string(grp.attr_value));
    for (size_t i = 0; i < cols.size(); ++i) {
      const RunFileColumn& c = cols[i];
      if (std::strcmp(c.group, grp.name) != 0 || !column_present(c, hd.per_layer)) continue;
      if (c.rows == ColumnRows::Header) {
        write_header_dataset(g.id(), c, hd);
        continue;
      }
      dsets_[i] = h5::create_extendable(g.id(), c.name, h5_type(c.type), column_width(c, dims_), c.chunk_rows);
      if (c.rows == ColumnRows::Single) write_single(dset(i), c.type, c.initial);
    }
  }
}

RunFile::~RunFile() {
  try {
    if (file_.valid()) h5::flush(file_.id());
  } catch (...) {
    // A destructor must not throw; the file keeps what was flushed before.
  }
}

// Gathers every step column for the whole block first, so a row of the wrong
// width leaves the file untouched. Per-layer columns are filled (and checked
// to be empty) even in a file without them: records with layers for a file
// without them mean the trainer and the header disagree.
void RunFile::append(const std::vector<StepRecord>& rows) {
  if (rows.empty()) return;
  const auto& cols = run_file_columns();
  std::vector<size_t> idx;
  std::vector<ColumnValues> values;
  for (size_t i = 0; i < cols.size(); ++i)
    if (cols[i].rows == ColumnRows::Step) {
      idx.push_back(i);
      values.emplace_back(cols[i].type);
    }
  for (const auto& r : rows)
    for (size_t j = 0; j < idx.size(); ++j) {
      const RunFileColumn& c = cols[idx[j]];
      const int64_t before = values[j].count();
      c.from_step(r, values[j]);
      const int64_t w = column_width(c, dims_);
      check_width(values[j].count() - before, c.width == ColumnWidth::None ? 1 : w, c.name, r.step);
    }
  const int64_t T = static_cast<int64_t>(rows.size());
  for (size_t j = 0; j < idx.size(); ++j) {
    const RunFileColumn& c = cols[idx[j]];
    if (dsets_[idx[j]].valid()) h5::append(dset(idx[j]), h5_type(c.type), values[j].data(), T, column_width(c, dims_));
  }
  static const size_t status_step = column_index("status", "step");
  write_single(dset(status_step), ColumnType::I64, rows.back().step);
}

void RunFile::append(const EvalRecord& r) {
  const auto& cols = run_file_columns();
  for (size_t i = 0; i < cols.size(); ++i) {
    const RunFileColumn& c = cols[i];
    if (c.rows != ColumnRows::Eval) continue;
    ColumnValues v(c.type);
    c.from_eval(r, v);
    h5::append(dset(i), h5_type(c.type), v.data(), 1, column_width(c, dims_));
  }
}

void RunFile::set_status(RunStatus status, int64_t step) {
  static const size_t code_col = column_index("status", "code"), step_col = column_index("status", "step");
  write_single(dset(code_col), ColumnType::I32, static_cast<int32_t>(status));
  write_single(dset(step_col), ColumnType::I64, step);
}

namespace {
bool has_rows(const RunFileColumn& c) { return c.rows == ColumnRows::Step || c.rows == ColumnRows::Eval; }

// Opens a step or eval column of an old run file and checks that it holds the
// rows a checkpoint at train_rows steps and eval_rows evaluations needs.
h5::Handle open_rows(hid_t old, const std::string& old_path, const RunFileColumn& c, int64_t train_rows,
                     int64_t eval_rows) {
  h5::Handle d = h5::open_dataset(old, c.path());
  const int64_t want = c.rows == ColumnRows::Eval ? eval_rows : train_rows;
  const int64_t have = h5::rows_of(d.id());
  if (have < want)
    throw CheckpointError(old_path + ": " + c.path() + " has " + std::to_string(have) +
                          " rows, but the checkpoint is at " + std::to_string(want) +
                          "; the run file lost rows it had flushed before the checkpoint");
  return d;
}
}  // namespace

void require_rows(const std::string& path, bool per_layer, int64_t train_rows, int64_t eval_rows) {
  h5::Handle old = h5::open_file_read(path);
  for (const RunFileColumn& c : run_file_columns())
    if (has_rows(c) && column_present(c, per_layer)) open_rows(old.id(), path, c, train_rows, eval_rows);
}

// The old file's first train_rows rows of every step column and eval_rows of
// every eval column; any rows past them were written after the checkpoint and
// will be written again.
void RunFile::copy_rows(const std::string& old_path, int64_t train_rows, int64_t eval_rows) {
  const auto& cols = run_file_columns();
  h5::Handle old = h5::open_file_read(old_path);
  for (size_t i = 0; i < cols.size(); ++i) {
    const RunFileColumn& c = cols[i];
    if (!has_rows(c) || !dsets_[i].valid()) continue;
    h5::Handle d = open_rows(old.id(), old_path, c, train_rows, eval_rows);
    const int64_t want = c.rows == ColumnRows::Eval ? eval_rows : train_rows;
    const int64_t width = column_width(c, dims_);
    std::vector<unsigned char> buf(static_cast<size_t>(want * std::max<int64_t>(width, 1)) * type_size(c.type));
    h5::read_rows(d.id(), h5_type(c.type), want, width, buf.data());
    h5::append(dset(i), h5_type(c.type), buf.data(), want, width);
  }
}

std::unique_ptr<RunFile> RunFile::resume(const std::string& path, const RunFileHeader& header, double flush_seconds,
                                         int64_t train_rows, int64_t eval_rows, int64_t target_step,
                                         int64_t target_samples) {
  const std::string tmp = path + ".resume.tmp";
  std::unique_ptr<RunFile> rf;
  try {
    rf.reset(new RunFile(tmp, with_defaults(header), flush_seconds, 0));
    rf->copy_rows(path, train_rows, eval_rows);
    if (target_step >= 0) rf->set_target_reached(target_step, target_samples);
    rf->set_status(RunStatus::Running, train_rows);
    rf->flush();
  } catch (...) {
    // Closes the half-made file (or none, if HDF5 could not create it: a full
    // disk may still take its name) and removes it, so it holds no space; the
    // old one is left as it was.
    rf.reset();
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw OutputError("cannot replace " + path + " with the resumed run file " + tmp + ": " + std::strerror(errno));
  rf->path_ = path;
  return rf;
}

void RunFile::set_target_reached(int64_t step, int64_t samples) {
  static const size_t step_col = column_index("target", "step"), samples_col = column_index("target", "samples");
  write_single(dset(step_col), ColumnType::I64, step);
  write_single(dset(samples_col), ColumnType::I64, samples);
}

void RunFile::write_final_params(const std::vector<float>& params) {
  static const size_t col = column_index("final", "params");
  h5::append(dset(col), h5::Type::F32, params.data(), static_cast<int64_t>(params.size()), 0);
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

// A column's dataset path from the table: the reader spells no path itself,
// so it cannot drift from what the writer creates.
std::string path_of(const char* group, const char* name) {
  return run_file_columns()[column_index(group, name)].path();
}

int64_t first_int(hid_t file, const char* group, const char* name) {
  h5::Handle d = h5::open_dataset(file, path_of(group, name));
  int64_t v = -1;
  h5::read_rows(d.id(), h5::Type::I64, 1, 0, &v);
  return v;
}

// Every value of a 1-d dataset as doubles; one NaN when it is empty, so that
// "the last value" of a run that never got there reads as NaN.
std::vector<double> all_values(hid_t file, const char* group, const char* name) {
  h5::Handle d = h5::open_dataset(file, path_of(group, name));
  const int64_t n = h5::rows_of(d.id());
  std::vector<double> v(static_cast<size_t>(std::max<int64_t>(n, 1)), std::nan(""));
  h5::read_rows(d.id(), h5::Type::F64, n, 0, v.data());
  return v;
}

RunStatus status_code(hid_t file) {
  h5::Handle d = h5::open_dataset(file, path_of("status", "code"));
  int32_t code = -1;
  h5::read_rows(d.id(), h5::Type::I32, 1, 0, &code);
  return static_cast<RunStatus>(code);
}

// What the runner reads of a finished run.
RunFileSummary summary_of(hid_t f) {
  RunFileSummary s;
  s.status = status_code(f);
  s.steps = first_int(f, "status", "step");
  s.target_step = first_int(f, "target", "step");
  s.val_acc = all_values(f, "eval", "val_acc");
  s.final_train_acc = all_values(f, "eval", "train_acc").back();
  s.wall_s = all_values(f, "train", "wall_s").back();
  return s;
}

// Whether HDF5 opens the file, without its error stack on stderr: the caller
// says what is wrong, naming the file.
bool opens_quietly(const std::string& path) {
  bool ok = true;
  H5E_BEGIN_TRY {
    try {
      h5::open_file_read(path);
    } catch (const LibraryError&) {
      ok = false;
    }
  }
  H5E_END_TRY;
  return ok;
}
}  // namespace

std::string hdf5_version() { return h5::library_version(); }

RunStatus read_run_status(const std::string& path) { return reading(path, status_code); }

RunFileSummary read_run_summary(const std::string& path) { return reading(path, summary_of); }

std::string run_file_damage(const std::string& path) {
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(path, ec);
  if (ec) return "it cannot be read (" + ec.message() + ")";
  if (bytes == 0) return "it is empty (0 bytes)";
  const std::string size = std::to_string(bytes) + " bytes";
  if (!h5::is_hdf5_file(path)) return "it is not an HDF5 file (" + size + " without HDF5's signature)";
  if (!opens_quietly(path))
    return "it is truncated or damaged: HDF5 finds its signature but cannot open it (" + size + ")";
  try {
    h5::Handle f = h5::open_file_read(path);
    summary_of(f.id());
  } catch (const LibraryError& e) {
    return std::string("it is not a whole batchscope run file: ") + e.what();
  }
  return "";
}

}  // namespace bs
