#pragma once
// Thin RAII over the HDF5 C API (in the spirit of HighFive): each handle closes
// itself, every C call is checked once in h5.cpp, failures become LibraryError.
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

void start_swmr(hid_t file);
void flush(hid_t file);
std::string library_version();

}  // namespace bs::h5
