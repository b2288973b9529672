#pragma once
// Every dataset of the run file (docs/run-file.md), once. RunFile creates,
// appends and cuts back on resume by walking this table, and
// tests/unit/dump_run_file_columns prints it, so a test can hold the docs and
// the Python checker (analysis/batchscope_analysis/schema.py) to the file the
// C++ really writes. A new column is one new entry here.
#include <cstdint>
#include <string>
#include <vector>

#include "train/records.h"

namespace bs {

struct RunFileHeader;

// Element type on disk.
enum class ColumnType { I32, I64, F32, F64, Str };

// Who writes a dataset, which also fixes its first axis.
enum class ColumnRows {
  Header,  // written once from the header before SWMR: no row axis
  Single,  // [1], overwritten during the run (/status, /target)
  Step,    // one row per StepRecord: [T, ...]
  Eval,    // one row per EvalRecord: [E, ...]
  Final,   // written once when the run completes (/final): empty until then
};

// Values per row (per dataset for Header): none (a 1-d column, or a scalar
// header dataset), ranks n, micro-batches K = n*m, layers L, or K*L; for a
// 1-d dataset of its own length: the sharpness subset's S samples, the
// model's P parameters.
enum class ColumnWidth { None, Ranks, Micro, Layers, MicroLayers, Subset, Params };

// The values of one column for a block of rows, flat and row-major. Each add
// must bring exactly the column's C++ type: the table stores values as they
// are, never converted, so the file holds what the trainer measured.
class ColumnValues {
 public:
  explicit ColumnValues(ColumnType type) : type_(type) {}
  void add(int32_t v) { put(ColumnType::I32, &v, sizeof v); }
  void add(int64_t v) { put(ColumnType::I64, &v, sizeof v); }
  void add(float v) { put(ColumnType::F32, &v, sizeof v); }
  void add(double v) { put(ColumnType::F64, &v, sizeof v); }
  void add(const std::vector<int32_t>& v);
  void add(const std::vector<int64_t>& v);
  void add(const std::vector<float>& v);
  void add(const std::vector<std::string>& v);
  int64_t count() const { return count_; }
  const void* data() const { return bytes_.data(); }
  std::vector<int32_t> ints() const;  // an I32 column's values
  const std::vector<std::string>& strings() const { return strings_; }
  int64_t first_int64() const;  // an I64 column's first value

 private:
  void put(ColumnType type, const void* v, size_t size);
  ColumnType type_;
  int64_t count_ = 0;
  std::vector<unsigned char> bytes_;
  std::vector<std::string> strings_;
};

struct RunFileColumn {
  const char* group;  // "train", without slashes
  const char* name;
  ColumnType type;
  ColumnRows rows;
  ColumnWidth width;
  bool per_layer;      // exists only with header.per_layer
  int64_t chunk_rows;  // HDF5 chunk rows of an extendable dataset
  const char* doc;     // one line; docs/run-file.md has the full meaning
  // Exactly one of these, by `rows` (Single columns start at `initial`).
  void (*from_header)(const RunFileHeader&, ColumnValues&);
  void (*from_step)(const StepRecord&, ColumnValues&);
  void (*from_eval)(const EvalRecord&, ColumnValues&);
  int64_t initial;

  std::string path() const { return std::string("/") + group + "/" + name; }
};

// All datasets in creation order, grouped by group.
const std::vector<RunFileColumn>& run_file_columns();
// The groups in creation order; a group may carry one string attribute.
struct RunFileGroup {
  const char* name;
  const char* attr;  // nullptr: none
  const char* attr_value;
};
const std::vector<RunFileGroup>& run_file_groups();

// The sizes the width symbols stand for in one file.
struct ColumnDims {
  int64_t ranks = 0, micro = 0, layers = 0;
};
// Values per row; 0 for ColumnWidth::None (HDF5's "1-d" in h5::append).
int64_t column_width(const RunFileColumn& c, const ColumnDims& d);
// Whether a file with this header has the column.
bool column_present(const RunFileColumn& c, bool per_layer);
// The shape as schema.py's DATASETS writes it: "T", "E", "n", "K", "L",
// "K*L" or "1"; empty for a scalar.
std::vector<std::string> column_shape(const RunFileColumn& c);
// "int32", "int64", "float32", "float64" or "str".
const char* column_type_name(ColumnType t);

}  // namespace bs
