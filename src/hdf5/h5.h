#pragma once
// Thin RAII over the HDF5 C API (in the spirit of HighFive): each handle closes
// itself, every C call is checked once in h5.cpp, failures become LibraryError
// (but a run file that cannot be created is an OutputError: its folder).
#include <cstdint>
#include <string>
#include <vector>

#include <hdf5.h>

namespace bs::h5 {

class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*closer)(hid_t)) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = -1;
  herr_t (*closer_)(hid_t) = nullptr;
};

// Element types we store.
enum class Type { I32, I64, F32, F64 };

// Creates (truncating) a file in the latest format, as SWMR needs.
Handle create_file(const std::string& path);
Handle create_group(hid_t parent, const std::string& name);
// Chunked dataset with an unlimited first dimension: shape [0] or [0, cols].
Handle create_extendable(hid_t parent, const std::string& name, Type type, int64_t cols, int64_t chunk_rows);
// Appends rows (row-major, rows * cols values) at the end of the first dimension.
void append(hid_t dset, Type type, const void* data, int64_t rows, int64_t cols);
// Overwrites element [0] of a 1-element extendable dataset (used for /status).
void write_first(hid_t dset, Type type, const void* value);

void write_attr(hid_t obj, const std::string& name, const std::string& value);
void write_attr(hid_t obj, const std::string& name, int64_t value);
void write_attr(hid_t obj, const std::string& name, double value);
void write_dataset(hid_t parent, const std::string& name, const std::vector<int32_t>& values);
void write_dataset(hid_t parent, const std::string& name, const std::vector<std::string>& values);
void write_scalar(hid_t parent, const std::string& name, int64_t value);

// Reading back (for resume): a file opened for SWMR reading works whether its
// writer closed it or was killed.
Handle open_file_read(const std::string& path);
Handle open_dataset(hid_t file, const std::string& name);
int64_t rows_of(hid_t dset);
// Reads the first `rows` rows (row-major, rows * max(cols, 1) values).
void read_rows(hid_t dset, Type type, int64_t rows, int64_t cols, void* out);
std::string read_str_attr(hid_t obj, const std::string& name);

// Array data sets written by other programs (h5py, ...): config's probe of
// data.path and data/hdf5_data.cpp. Problems a user can fix (a missing
// dataset, a dtype we do not take) are for the caller to report: these only
// answer questions, and throw LibraryError only when HDF5 itself fails.

// Whether the file has HDF5's signature (false for any other file).
bool is_hdf5_file(const std::string& path);
// Read-only, without SWMR (which needs the latest file format).
Handle open_file_readonly(const std::string& path);
// Whether `path` (absolute, or relative to the root group) names a dataset.
// A missing group or link on the way is false, with no HDF5 error output.
bool has_dataset(hid_t file, const std::string& path);
// Every dataset reachable from the root group, as absolute paths in name order.
std::vector<std::string> dataset_paths(hid_t file);
// The dimensions of a dataset ([] for a scalar).
std::vector<int64_t> dims_of(hid_t dset);

// A dataset's element type as stored.
struct ElementType {
  enum Class { Integer, Float, Other } cls = Other;
  bool is_signed = false;
  size_t bytes = 0;
  std::string name;  // int8 .. int64, uint8 .. uint64, float16/32/64; else string, compound, enum, ...
};
ElementType element_type(hid_t dset);
// The dataset's type and shape, e.g. "uint8 [60000, 1, 28, 28]".
std::string describe(hid_t dset);
// "/test/x (uint8 [10000, 1, 28, 28]), /train/x (...)": every dataset in the file.
std::string describe_datasets(hid_t file);

// The memory types a reader asks HDF5 to convert to.
enum class Native { U8, I64, F32 };
// Reads the first `rows` rows of a dataset of any rank >= 1 (a hyperslab:
// nothing past them is read) into `out`, rows * (product of dims[1:]) values
// of `mem`, converted by HDF5 from the stored type.
void read_leading_rows(hid_t dset, Native mem, int64_t rows, void* out);

void start_swmr(hid_t file);
void flush(hid_t file);
std::string library_version();

}  // namespace bs::h5
