#include "data/hdf5_data.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <sys/stat.h>

#include "hdf5/h5.h"
#include "util/errors.h"

namespace bs {
namespace {

const char* const kSupportedX =
    "uint8 (kept as bytes, standardized as (x / 255 - data.mean) / data.stdev), or int8/16/32/64, uint16/32/64, "
    "float32, float64 (converted to float32 and used as stored)";
const char* const kSupportedY =
    "an integer type (int8/16/32/64, uint8/16/32/64: class labels, for cross_entropy) or float32 / float64 (targets, "
    "for mse)";
// A class label above this is not a class index (a model would need that many outputs).
const int64_t kMaxLabel = 1'000'000;

// One of the four datasets, from its header.
struct Array {
  std::string key;   // data.train_x
  std::string path;  // /train/x
  h5::Handle dset;
  std::vector<int64_t> dims;
  h5::ElementType type;
};

// One split: its x and y, what they hold and how many rows are read.
struct Split {
  Array x, y;
  int64_t rows = 0;
  InputType input = InputType::U8;
  TargetType target = TargetType::Class;
  std::vector<int64_t> sample_shape, target_shape;
};

struct Source {
  h5::Handle file;
  Split train, test;
};

int64_t product(const std::vector<int64_t>& v) {
  int64_t n = 1;
  for (auto x : v) n *= x;
  return n;
}

std::string shape_text(const std::vector<int64_t>& v) {
  std::vector<std::string> parts;
  parts.reserve(v.size());
  for (auto x : v) parts.push_back(std::to_string(x));
  return "[" + join(parts, ", ") + "]";
}

// "FILE: data.train_x ('/train/x', float64 [100, 3])": the dataset in a message.
std::string where(const DataSpec& spec, const Array& a) {
  return spec.path + ": " + a.key + " ('" + a.path + "', " + a.type.name + " " + shape_text(a.dims) + ")";
}

h5::Handle open_file(const std::string& study_file, const DataSpec& spec) {
  struct stat st {};
  if (spec.path.empty()) throw ConfigError(study_file, "data.path", "required for hdf5: the HDF5 file to read");
  if (::stat(spec.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw ConfigError(study_file, "data.path", "'" + spec.path + "' does not exist or is not a file");
  if (!h5::is_hdf5_file(spec.path)) throw DataError(spec.path + " (data.path) is not an HDF5 file (no HDF5 signature)");
  return h5::open_file_readonly(spec.path);
}

Array open_array(const DataSpec& spec, hid_t file, const std::string& key, const std::string& path) {
  if (!h5::has_dataset(file, path))
    throw DataError(spec.path + " has no dataset '" + path + "' (" + key + "); set " + key +
                    " to one of its datasets: " + h5::describe_datasets(file));
  Array a;
  a.key = key;
  a.path = path;
  a.dset = h5::open_dataset(file, path);
  a.dims = h5::dims_of(a.dset.id());
  a.type = h5::element_type(a.dset.id());
  if (a.dims.empty()) throw DataError(where(spec, a) + " is a scalar; expected one row per sample, [N, ...]");
  return a;
}

InputType input_type_of(const DataSpec& spec, const Array& x) {
  const auto& t = x.type;
  if (t.cls == h5::ElementType::Integer && t.bytes == 1 && !t.is_signed) return InputType::U8;
  if (t.cls == h5::ElementType::Integer && t.bytes <= 8) return InputType::F32;
  if (t.cls == h5::ElementType::Float && (t.bytes == 4 || t.bytes == 8)) return InputType::F32;
  throw DataError(where(spec, x) + ": x cannot be " + t.name + "; supported: " + kSupportedX);
}

TargetType target_type_of(const DataSpec& spec, const Array& y) {
  const auto& t = y.type;
  if (t.cls == h5::ElementType::Integer && t.bytes <= 8) {
    if (y.dims.size() != 1)
      throw DataError(where(spec, y) +
                      ": class labels (an integer type) must be 1-d, [N]; for several targets per "
                      "sample store them as float32 or float64 [N, k] and use model.loss: mse");
    return TargetType::Class;
  }
  if (t.cls == h5::ElementType::Float && (t.bytes == 4 || t.bytes == 8)) {
    if (y.dims.size() > 2) throw DataError(where(spec, y) + ": float targets must be [N] or [N, k]");
    return TargetType::Float;
  }
  throw DataError(where(spec, y) + ": y cannot be " + t.name + "; supported: " + kSupportedY);
}

Split inspect_split(const DataSpec& spec, hid_t file, const std::string& split, const std::string& x_path,
                    const std::string& y_path, int64_t size) {
  Split s;
  s.x = open_array(spec, file, "data." + split + "_x", x_path);
  s.y = open_array(spec, file, "data." + split + "_y", y_path);
  s.input = input_type_of(spec, s.x);
  s.target = target_type_of(spec, s.y);
  const int64_t n = s.x.dims[0];
  if (s.y.dims[0] != n)
    throw DataError(spec.path + ": " + s.x.key + " ('" + s.x.path + "') has " + std::to_string(n) + " rows but " +
                    s.y.key + " ('" + s.y.path + "') has " + std::to_string(s.y.dims[0]) +
                    "; every sample needs one row in each");
  s.sample_shape.assign(s.x.dims.begin() + 1, s.x.dims.end());
  if (s.y.dims.size() == 2) s.target_shape = {s.y.dims[1]};
  if (product(s.sample_shape) == 0) throw DataError(where(spec, s.x) + ": a sample has no values");
  if (product(s.target_shape) == 0) throw DataError(where(spec, s.y) + ": a target has no values");
  if (n == 0) throw DataError(where(spec, s.x) + " has no rows");
  if (size > n)
    throw DataError(spec.path + ": data." + split + "_size is " + std::to_string(size) + " but " + s.x.key + " ('" +
                    s.x.path + "') has only " + std::to_string(n) + " rows");
  s.rows = size > 0 ? size : n;
  return s;
}

const char* input_name(InputType t) { return t == InputType::U8 ? "uint8 (kept as bytes)" : "float (as float32)"; }
const char* target_name(TargetType t) { return t == TargetType::Class ? "integer class labels" : "float targets"; }

// The splits are one data set: a model takes both alike.
void check_splits_agree(const DataSpec& spec, const Split& tr, const Split& te) {
  auto both = [&](const Array& a, const Array& b) {
    return a.key + " ('" + a.path + "', " + a.type.name + " " + shape_text(a.dims) + ") and " + b.key + " ('" + b.path +
           "', " + b.type.name + " " + shape_text(b.dims) + ")";
  };
  if (tr.sample_shape != te.sample_shape)
    throw DataError(spec.path + ": the samples of " + both(tr.x, te.x) + " differ in shape (" +
                    shape_text(tr.sample_shape) + " and " + shape_text(te.sample_shape) +
                    "); both splits' x must have the same shape past the first dimension");
  if (tr.input != te.input)
    throw DataError(spec.path + ": " + both(tr.x, te.x) + " are stored differently: " + input_name(tr.input) + " and " +
                    input_name(te.input) + "; store both splits' x as uint8, or neither");
  if (tr.target != te.target)
    throw DataError(spec.path + ": " + both(tr.y, te.y) +
                    " hold different kinds of targets: " + target_name(tr.target) + " and " + target_name(te.target));
  if (tr.target_shape != te.target_shape)
    throw DataError(spec.path + ": the targets of " + both(tr.y, te.y) + " differ in shape (" +
                    shape_text(tr.target_shape) + " and " + shape_text(te.target_shape) + ")");
}

// Bytes of one split as Dataset holds it.
int64_t held_bytes(const Split& s) {
  const int64_t x = product(s.sample_shape) * (s.input == InputType::U8 ? 1 : 4);
  const int64_t y = s.target == TargetType::Class ? 8 : product(s.target_shape) * 4;
  return s.rows * (x + y);
}

Source inspect(const std::string& study_file, const DataSpec& spec) {
  Source src;
  src.file = open_file(study_file, spec);
  src.train = inspect_split(spec, src.file.id(), "train", spec.train_x, spec.train_y, spec.train_size);
  src.test = inspect_split(spec, src.file.id(), "test", spec.test_x, spec.test_y, spec.test_size);
  check_splits_agree(spec, src.train, src.test);
  if (src.train.input == InputType::F32 && (!std::isnan(spec.mean) || !std::isnan(spec.stdev)))
    throw ConfigError(study_file, std::isnan(spec.mean) ? "data.stdev" : "data.mean",
                      "applies only to uint8 x (standardized as (x / 255 - mean) / stdev), but " +
                          where(spec, src.train.x) + " is used as stored; remove data.mean and data.stdev");
  check_fits_memory(spec.path, held_bytes(src.train) + held_bytes(src.test), available_memory_bytes());
  return src;
}

// The first row (of `row_numel` values each) holding NaN or Inf, or -1.
int64_t first_nonfinite_row(const std::vector<float>& v, int64_t row_numel) {
  auto it = std::find_if(v.begin(), v.end(), [](float f) { return !std::isfinite(f); });
  return it == v.end() ? -1 : static_cast<int64_t>(it - v.begin()) / row_numel;
}

void check_finite(const DataSpec& spec, const Array& a, const std::vector<float>& v, int64_t row_numel) {
  const int64_t row = first_nonfinite_row(v, row_numel);
  if (row < 0) return;
  throw DataError(where(spec, a) + ": row " + std::to_string(row) + " holds NaN or Inf" +
                  (a.type.bytes == 8 ? " (or a float64 value beyond float32's range)" : "") +
                  "; clean the data, or cut it before that row with data.train_size / data.test_size");
}

Dataset read_split(const DataSpec& spec, const Split& s) {
  Dataset d;
  d.size = s.rows;
  d.sample_shape = s.sample_shape;
  d.input_type = s.input;
  const int64_t numel = product(s.sample_shape);
  const auto n = static_cast<size_t>(s.rows * numel);
  if (s.input == InputType::U8) {
    d.images.resize(n);
    h5::read_leading_rows(s.x.dset.id(), h5::Native::U8, s.rows, d.images.data());
  } else {
    d.features.resize(n);
    h5::read_leading_rows(s.x.dset.id(), h5::Native::F32, s.rows, d.features.data());
    if (s.x.type.cls == h5::ElementType::Float) check_finite(spec, s.x, d.features, numel);
  }
  d.target_type = s.target;
  if (s.target == TargetType::Class) {
    d.labels.resize(static_cast<size_t>(s.rows));
    h5::read_leading_rows(s.y.dset.id(), h5::Native::I64, s.rows, d.labels.data());
    for (size_t i = 0; i < d.labels.size(); ++i) {
      const int64_t l = d.labels[i];
      if (l < 0 || l > kMaxLabel)
        throw DataError(where(spec, s.y) + ": row " + std::to_string(i) + " has label " + std::to_string(l) +
                        "; class labels must be in 0 .. " + std::to_string(kMaxLabel) +
                        " (the model has one output per class)" +
                        (l < 0 ? "" : "; for regression targets store y as float32 / float64 and use model.loss: mse"));
    }
  } else {
    d.target_shape = s.target_shape;
    d.targets.resize(static_cast<size_t>(s.rows * product(s.target_shape)));
    h5::read_leading_rows(s.y.dset.id(), h5::Native::F32, s.rows, d.targets.data());
    check_finite(spec, s.y, d.targets, product(s.target_shape));
  }
  return d;
}

// Mean and population standard deviation of x / 255, in double, from a
// histogram of the bytes (exact, one pass).
void standardization(const DataSpec& spec, const Array& x, const std::vector<uint8_t>& images, double& mean,
                     double& stdev) {
  std::array<int64_t, 256> count{};
  for (uint8_t v : images) ++count[v];
  const auto n = static_cast<double>(images.size());
  double sum = 0;
  for (int v = 0; v < 256; ++v) sum += static_cast<double>(count[static_cast<size_t>(v)]) * (v / 255.0);
  const double m = sum / n;
  double sq = 0;
  for (int v = 0; v < 256; ++v) {
    const double dv = v / 255.0 - m;
    sq += static_cast<double>(count[static_cast<size_t>(v)]) * dv * dv;
  }
  if (std::isnan(spec.mean)) mean = m;
  if (std::isnan(spec.stdev)) {
    stdev = std::sqrt(sq / n);
    if (!(stdev > 0))
      throw DataError(where(spec, x) + ": every value read is " + std::to_string(images.front()) +
                      ", so its standard deviation is 0; set data.stdev (and data.mean)");
  }
}

}  // namespace

int64_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    int64_t kb = -1;
    std::string unit;
    if (fields >> kb >> unit && unit == "kB" && kb >= 0) return kb * 1024;
    return -1;
  }
  return -1;
}

void check_fits_memory(const std::string& file, int64_t needed, int64_t available) {
  if (available < 0 || needed <= available) return;
  auto mb = [](int64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
    return std::string(buf);
  };
  throw DataError(file + ": the two splits need " + mb(needed) + " in memory but this host has " + mb(available) +
                  " available (MemAvailable in /proc/meminfo); read fewer rows with data.train_size (and "
                  "data.test_size)");
}

std::vector<std::string> hdf5_data_files(const std::string& study_file, const DataSpec& spec) {
  inspect(study_file, spec);
  return {spec.path};
}

DataSplits load_hdf5(const std::string& study_file, const DataSpec& spec) {
  Source src = inspect(study_file, spec);
  DataSplits s;
  s.train = read_split(spec, src.train);
  s.test = read_split(spec, src.test);
  if (s.train.target_type == TargetType::Class) {
    int64_t top = 0;
    for (const auto* d : {&s.train, &s.test})
      for (int64_t l : d->labels) top = std::max(top, l);
    s.train.num_classes = s.test.num_classes = top + 1;
  } else {
    s.train.num_classes = s.test.num_classes = 0;
  }
  if (s.train.input_type == InputType::U8) {
    double mean = spec.mean, stdev = spec.stdev;
    if (std::isnan(mean) || std::isnan(stdev)) standardization(spec, src.train.x, s.train.images, mean, stdev);
    s.train.mean = s.test.mean = static_cast<float>(mean);
    s.train.stdev = s.test.stdev = static_cast<float>(stdev);
  } else {
    s.train.mean = s.test.mean = 0.f;
    s.train.stdev = s.test.stdev = 1.f;
  }
  return s;
}

}  // namespace bs
