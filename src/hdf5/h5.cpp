#include "hdf5/h5.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "util/check.h"

namespace bs::h5 {
namespace {

hid_t mem_type(Type t) {
  switch (t) {
    case Type::I32:
      return H5T_NATIVE_INT32;
    case Type::I64:
      return H5T_NATIVE_INT64;
    case Type::F32:
      return H5T_NATIVE_FLOAT;
    case Type::F64:
      return H5T_NATIVE_DOUBLE;
  }
  return H5T_NATIVE_DOUBLE;
}

// Little-endian on disk regardless of the writer's host.
hid_t file_type(Type t) {
  switch (t) {
    case Type::I32:
      return H5T_STD_I32LE;
    case Type::I64:
      return H5T_STD_I64LE;
    case Type::F32:
      return H5T_IEEE_F32LE;
    case Type::F64:
      return H5T_IEEE_F64LE;
  }
  return H5T_IEEE_F64LE;
}

Handle vlen_string_type() {
  Handle t(BS_H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose);
  BS_H5_CHECK(H5Tset_size(t.id(), H5T_VARIABLE));
  BS_H5_CHECK(H5Tset_cset(t.id(), H5T_CSET_UTF8));
  return t;
}

Handle scalar_space() { return Handle(BS_H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose); }

hid_t native_type(Native t) {
  switch (t) {
    case Native::U8:
      return H5T_NATIVE_UINT8;
    case Native::I64:
      return H5T_NATIVE_INT64;
    case Native::F32:
      return H5T_NATIVE_FLOAT;
  }
  return H5T_NATIVE_FLOAT;
}

// H5Lvisit's callback: collects the datasets among the links it visits. It
// must not throw through HDF5's C frames, and a link it cannot follow (a
// dangling soft link, an external one) is skipped.
herr_t collect_dataset(hid_t group, const char* name, const H5L_info_t* info, void* out) noexcept {
  if (info->type != H5L_TYPE_HARD && info->type != H5L_TYPE_SOFT) return 0;
  if (H5Oexists_by_name(group, name, H5P_DEFAULT) <= 0) return 0;
  const hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
  if (obj < 0) return 0;
  const bool is_dataset = H5Iget_type(obj) == H5I_DATASET;
  H5Oclose(obj);
  try {
    if (is_dataset) static_cast<std::vector<std::string>*>(out)->push_back("/" + std::string(name));
  } catch (...) {
    return -1;
  }
  return 0;
}

// A write the file system refused: HDF5 reports it as an I/O error (H5E_IO:
// a write, seek or extend that failed) at each level of the stack the failed
// call left; the file driver's own entry, the innermost, ends its description
// in the C library's "error message = '...'" (sec2: "No space left on
// device"), which is the reason given when there is one.
// With opening set, the driver's failure to create or open the file counts
// too (its "error message" is then the reason: "Permission denied", ...).
struct IoRefusal {
  bool opening = false;
  bool found = false;
  bool has_errno = false;
  std::string reason;
};

herr_t find_io_refusal(unsigned, const H5E_error2_t* e, void* out) noexcept {
  auto* r = static_cast<IoRefusal*>(out);
  if (r->has_errno) return 0;
  const bool io = e->maj_num == H5E_IO && (e->min_num == H5E_WRITEERROR || e->min_num == H5E_SEEKERROR ||
                                           e->min_num == H5E_TRUNCATED || e->min_num == H5E_CLOSEERROR);
  const bool open = r->opening && e->maj_num == H5E_FILE && e->min_num == H5E_CANTOPENFILE;
  if (!io && !open) return 0;
  try {
    const std::string desc = e->desc ? e->desc : "";
    const std::string key = "error message = '";
    const size_t at = desc.find(key);
    const size_t end = at == std::string::npos ? at : desc.find('\'', at + key.size());
    if (end != std::string::npos) {
      r->reason = desc.substr(at + key.size(), end - at - key.size());
      r->has_errno = true;
      r->found = true;
    } else if (io && !r->found) {
      r->reason = "HDF5: " + (desc.empty() ? std::string("a write failed") : desc);
      r->found = true;
    }
  } catch (...) {
    return -1;
  }
  return 0;
}

// The name of the file holding obj, as it was opened (HDF5 keeps the path).
std::string file_name(hid_t obj) {
  ssize_t n = -1;
  H5E_BEGIN_TRY { n = H5Fget_name(obj, nullptr, 0); }
  H5E_END_TRY;
  if (n <= 0) return "an HDF5 output file";
  std::string name(static_cast<size_t>(n) + 1, '\0');
  H5E_BEGIN_TRY { n = H5Fget_name(obj, &name[0], name.size()); }
  H5E_END_TRY;
  if (n <= 0) return "an HDF5 output file";
  name.resize(static_cast<size_t>(n));
  return name;
}

// After a call that writes (or may flush) failed, with HDF5's own printing
// off: a write the file system refused (a full disk, a quota, an I/O error)
// is an output problem, OutputError naming the file (exit 5); anything else
// is HDF5's error stack on stderr, as HDF5 would have printed it, and a
// LibraryError (exit 4). Walks the stack before any other API call clears it.
[[noreturn]] void write_failed(hid_t obj, const char* call, int line) {
  IoRefusal r;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, find_io_refusal, &r);
  if (!r.found) {
    H5Eprint2(H5E_DEFAULT, stderr);
    detail::throw_library_error("HDF5", call, "", __FILE__, line);
  }
  H5Eclear2(H5E_DEFAULT);
  throw OutputError("cannot write " + file_name(obj) + ": " + r.reason +
                    " (run files go under the study's 'output' folder: it must be writable, with space left)");
}

template <class F>
auto checked_write(hid_t obj, F&& call, const char* text, int line) {
  decltype(call()) rc = -1;
  H5E_BEGIN_TRY { rc = call(); }
  H5E_END_TRY;
  if (rc < 0) write_failed(obj, text, line);
  return rc;
}

}  // namespace

// An HDF5 call that writes to the file holding obj (directly, or by flushing
// its caches): its failure is classified by write_failed.
#define BS_H5_WRITE(obj, call) checked_write((obj), [&]() { return (call); }, #call, __LINE__)

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    closer_ = o.closer_;
    o.id_ = -1;
  }
  return *this;
}

// Closing writes what HDF5 still caches for the object. After a write the
// file system refused (already thrown as an OutputError), each close fails the
// same way: quietly, since the error was reported once. Any other failure to
// close prints HDF5's error stack, as HDF5 would.
void Handle::reset() {
  if (id_ >= 0 && closer_) {
    herr_t rc = 0;
    H5E_BEGIN_TRY { rc = closer_(id_); }
    H5E_END_TRY;
    if (rc < 0) {
      IoRefusal r;
      H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, find_io_refusal, &r);
      if (!r.found) H5Eprint2(H5E_DEFAULT, stderr);
      H5Eclear2(H5E_DEFAULT);
    }
  }
  id_ = -1;
}

Handle create_file(const std::string& path) {
  Handle fapl(BS_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS)), H5Pclose);
  BS_H5_CHECK(H5Pset_libver_bounds(fapl.id(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST));
  hid_t f = -1;
  H5E_BEGIN_TRY { f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id()); }
  H5E_END_TRY;
  if (f < 0) {
    // Why, as the C library said: a full disk takes the file's name but not
    // its first bytes; a folder may refuse the name.
    IoRefusal r;
    r.opening = true;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, find_io_refusal, &r);
    H5Eclear2(H5E_DEFAULT);
    throw OutputError("HDF5 cannot create run file " + path +
                      (r.found ? ": " + r.reason + " (the folder must be writable, with space left)"
                               : std::string(" (is the folder writable?)")));
  }
  return Handle(f, H5Fclose);
}

Handle create_group(hid_t parent, const std::string& name) {
  return Handle(BS_H5_WRITE(parent, H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)), H5Gclose);
}

Handle create_extendable(hid_t parent, const std::string& name, Type type, int64_t cols, int64_t chunk_rows) {
  const int rank = cols > 0 ? 2 : 1;
  hsize_t dims[2] = {0, static_cast<hsize_t>(cols)};
  hsize_t maxdims[2] = {H5S_UNLIMITED, static_cast<hsize_t>(cols)};
  hsize_t chunk[2] = {static_cast<hsize_t>(chunk_rows), static_cast<hsize_t>(cols)};
  Handle space(BS_H5_CHECK(H5Screate_simple(rank, dims, maxdims)), H5Sclose);
  Handle dcpl(BS_H5_CHECK(H5Pcreate(H5P_DATASET_CREATE)), H5Pclose);
  BS_H5_CHECK(H5Pset_chunk(dcpl.id(), rank, chunk));
  return Handle(BS_H5_WRITE(parent, H5Dcreate2(parent, name.c_str(), file_type(type), space.id(), H5P_DEFAULT,
                                               dcpl.id(), H5P_DEFAULT)),
                H5Dclose);
}

void append(hid_t dset, Type type, const void* data, int64_t rows, int64_t cols) {
  if (rows <= 0) return;
  Handle fspace(BS_H5_CHECK(H5Dget_space(dset)), H5Sclose);
  const int rank = BS_H5_CHECK(H5Sget_simple_extent_ndims(fspace.id()));
  hsize_t dims[2] = {0, 0};
  BS_H5_CHECK(H5Sget_simple_extent_dims(fspace.id(), dims, nullptr));
  hsize_t newdims[2] = {dims[0] + static_cast<hsize_t>(rows), dims[1]};
  BS_H5_WRITE(dset, H5Dset_extent(dset, newdims));
  Handle space(BS_H5_CHECK(H5Dget_space(dset)), H5Sclose);
  hsize_t start[2] = {dims[0], 0};
  hsize_t count[2] = {static_cast<hsize_t>(rows), static_cast<hsize_t>(cols)};
  BS_H5_CHECK(H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, start, nullptr, count, nullptr));
  Handle mspace(BS_H5_CHECK(H5Screate_simple(rank, count, nullptr)), H5Sclose);
  BS_H5_WRITE(dset, H5Dwrite(dset, mem_type(type), mspace.id(), space.id(), H5P_DEFAULT, data));
}

void write_first(hid_t dset, Type type, const void* value) {
  Handle fspace(BS_H5_CHECK(H5Dget_space(dset)), H5Sclose);
  hsize_t dims[1] = {0};
  BS_H5_CHECK(H5Sget_simple_extent_dims(fspace.id(), dims, nullptr));
  if (dims[0] == 0) {
    append(dset, type, value, 1, 0);
    return;
  }
  hsize_t start[1] = {0}, count[1] = {1};
  BS_H5_CHECK(H5Sselect_hyperslab(fspace.id(), H5S_SELECT_SET, start, nullptr, count, nullptr));
  Handle mspace(BS_H5_CHECK(H5Screate_simple(1, count, nullptr)), H5Sclose);
  BS_H5_WRITE(dset, H5Dwrite(dset, mem_type(type), mspace.id(), fspace.id(), H5P_DEFAULT, value));
}

void write_attr(hid_t obj, const std::string& name, const std::string& value) {
  Handle t = vlen_string_type();
  Handle s = scalar_space();
  Handle a(BS_H5_WRITE(obj, H5Acreate2(obj, name.c_str(), t.id(), s.id(), H5P_DEFAULT, H5P_DEFAULT)), H5Aclose);
  const char* p = value.c_str();
  BS_H5_WRITE(obj, H5Awrite(a.id(), t.id(), &p));
}

void write_attr(hid_t obj, const std::string& name, int64_t value) {
  Handle s = scalar_space();
  Handle a(BS_H5_WRITE(obj, H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, s.id(), H5P_DEFAULT, H5P_DEFAULT)), H5Aclose);
  BS_H5_WRITE(obj, H5Awrite(a.id(), H5T_NATIVE_INT64, &value));
}

void write_attr(hid_t obj, const std::string& name, double value) {
  Handle s = scalar_space();
  Handle a(BS_H5_WRITE(obj, H5Acreate2(obj, name.c_str(), H5T_IEEE_F64LE, s.id(), H5P_DEFAULT, H5P_DEFAULT)), H5Aclose);
  BS_H5_WRITE(obj, H5Awrite(a.id(), H5T_NATIVE_DOUBLE, &value));
}

void write_dataset(hid_t parent, const std::string& name, const std::vector<int32_t>& values) {
  hsize_t n = values.size();
  Handle s(BS_H5_CHECK(H5Screate_simple(1, &n, nullptr)), H5Sclose);
  Handle d(BS_H5_WRITE(parent,
                       H5Dcreate2(parent, name.c_str(), H5T_STD_I32LE, s.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)),
           H5Dclose);
  BS_H5_WRITE(parent, H5Dwrite(d.id(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()));
}

void write_dataset(hid_t parent, const std::string& name, const std::vector<std::string>& values) {
  hsize_t n = values.size();
  Handle t = vlen_string_type();
  Handle s(BS_H5_CHECK(H5Screate_simple(1, &n, nullptr)), H5Sclose);
  Handle d(BS_H5_WRITE(parent, H5Dcreate2(parent, name.c_str(), t.id(), s.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)),
           H5Dclose);
  std::vector<const char*> ptrs;
  ptrs.reserve(values.size());
  for (const auto& v : values) ptrs.push_back(v.c_str());
  BS_H5_WRITE(parent, H5Dwrite(d.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()));
}

void write_scalar(hid_t parent, const std::string& name, int64_t value) {
  Handle s = scalar_space();
  Handle d(BS_H5_WRITE(parent,
                       H5Dcreate2(parent, name.c_str(), H5T_STD_I64LE, s.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)),
           H5Dclose);
  BS_H5_WRITE(parent, H5Dwrite(d.id(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value));
}

Handle open_file_read(const std::string& path) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
  if (f < 0) throw LibraryError("HDF5 cannot open " + path + " for reading");
  return Handle(f, H5Fclose);
}

Handle open_dataset(hid_t file, const std::string& name) {
  hid_t d = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  if (d < 0) throw LibraryError("HDF5: dataset " + name + " is missing");
  return Handle(d, H5Dclose);
}

int64_t rows_of(hid_t dset) {
  Handle space(BS_H5_CHECK(H5Dget_space(dset)), H5Sclose);
  hsize_t dims[2] = {0, 0};
  BS_H5_CHECK(H5Sget_simple_extent_dims(space.id(), dims, nullptr));
  return static_cast<int64_t>(dims[0]);
}

void read_rows(hid_t dset, Type type, int64_t rows, int64_t cols, void* out) {
  if (rows <= 0) return;
  Handle space(BS_H5_CHECK(H5Dget_space(dset)), H5Sclose);
  const int rank = BS_H5_CHECK(H5Sget_simple_extent_ndims(space.id()));
  hsize_t start[2] = {0, 0};
  hsize_t count[2] = {static_cast<hsize_t>(rows), static_cast<hsize_t>(cols)};
  BS_H5_CHECK(H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, start, nullptr, count, nullptr));
  Handle mspace(BS_H5_CHECK(H5Screate_simple(rank, count, nullptr)), H5Sclose);
  BS_H5_CHECK(H5Dread(dset, mem_type(type), mspace.id(), space.id(), H5P_DEFAULT, out));
}

std::string read_str_attr(hid_t obj, const std::string& name) {
  Handle a(BS_H5_CHECK(H5Aopen(obj, name.c_str(), H5P_DEFAULT)), H5Aclose);
  Handle t = vlen_string_type();
  char* p = nullptr;
  BS_H5_CHECK(H5Aread(a.id(), t.id(), &p));
  std::string out = p ? p : "";
  H5free_memory(p);
  return out;
}

bool is_hdf5_file(const std::string& path) {
  htri_t r = -1;
  H5E_BEGIN_TRY { r = H5Fis_hdf5(path.c_str()); }
  H5E_END_TRY;
  return r > 0;
}

Handle open_file_readonly(const std::string& path) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0)
    throw LibraryError("HDF5 cannot open " + path +
                       " for reading (if a program has it open for writing, close it first, or set "
                       "HDF5_USE_FILE_LOCKING=FALSE)");
  return Handle(f, H5Fclose);
}

bool has_dataset(hid_t file, const std::string& path) {
  std::vector<std::string> parts;
  for (size_t at = 0; at <= path.size();) {
    size_t slash = path.find('/', at);
    if (slash == std::string::npos) slash = path.size();
    if (slash > at) parts.push_back(path.substr(at, slash - at));
    at = slash + 1;
  }
  // Each step only after the one above it is known to be a group: HDF5 fails
  // (and prints its error stack) on a path through a missing link.
  std::string here;
  for (size_t i = 0; i < parts.size(); ++i) {
    here += "/" + parts[i];
    if (!BS_H5_CHECK(H5Lexists(file, here.c_str(), H5P_DEFAULT))) return false;
    if (!BS_H5_CHECK(H5Oexists_by_name(file, here.c_str(), H5P_DEFAULT))) return false;  // a dangling soft link
    Handle obj(BS_H5_CHECK(H5Oopen(file, here.c_str(), H5P_DEFAULT)), H5Oclose);
    const H5I_type_t type = H5Iget_type(obj.id());
    if (i + 1 == parts.size()) return type == H5I_DATASET;
    if (type != H5I_GROUP) return false;
  }
  return false;
}

std::vector<std::string> dataset_paths(hid_t file) {
  std::vector<std::string> out;
  herr_t rc = 0;
  H5E_BEGIN_TRY { rc = H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, collect_dataset, &out); }
  H5E_END_TRY;
  if (rc < 0) detail::throw_library_error("HDF5", "H5Lvisit", "", __FILE__, __LINE__);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<int64_t> dims_of(hid_t dset) {
  Handle space(BS_H5_CHECK(H5Dget_space(dset)), H5Sclose);
  const int rank = BS_H5_CHECK(H5Sget_simple_extent_ndims(space.id()));
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0) BS_H5_CHECK(H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr));
  return std::vector<int64_t>(dims.begin(), dims.end());
}

ElementType element_type(hid_t dset) {
  Handle t(BS_H5_CHECK(H5Dget_type(dset)), H5Tclose);
  const H5T_class_t c = H5Tget_class(t.id());
  if (c == H5T_NO_CLASS) detail::throw_library_error("HDF5", "H5Tget_class", "", __FILE__, __LINE__);
  ElementType e;
  e.bytes = H5Tget_size(t.id());
  if (e.bytes == 0) detail::throw_library_error("HDF5", "H5Tget_size", "", __FILE__, __LINE__);
  const std::string bits = std::to_string(e.bytes * 8);
  switch (c) {
    case H5T_INTEGER:
      e.cls = ElementType::Integer;
      e.is_signed = BS_H5_CHECK(H5Tget_sign(t.id())) == H5T_SGN_2;
      e.name = (e.is_signed ? "int" : "uint") + bits;
      break;
    case H5T_FLOAT:
      e.cls = ElementType::Float;
      e.is_signed = true;
      e.name = "float" + bits;
      break;
    case H5T_STRING:
      e.name = "string";
      break;
    case H5T_COMPOUND:
      e.name = "compound";
      break;
    case H5T_ENUM:
      e.name = "enum (h5py stores bool as one)";
      break;
    case H5T_BITFIELD:
      e.name = "bitfield";
      break;
    case H5T_OPAQUE:
      e.name = "opaque";
      break;
    case H5T_REFERENCE:
      e.name = "reference";
      break;
    case H5T_VLEN:
      e.name = "variable-length";
      break;
    case H5T_ARRAY:
      e.name = "array";
      break;
    default:
      e.name = "time";
      break;
  }
  return e;
}

std::string describe(hid_t dset) {
  std::vector<std::string> dims;
  for (int64_t d : dims_of(dset)) dims.push_back(std::to_string(d));
  return element_type(dset).name + " [" + join(dims, ", ") + "]";
}

std::string describe_datasets(hid_t file) {
  std::vector<std::string> items;
  for (const auto& p : dataset_paths(file)) {
    Handle d = open_dataset(file, p);
    items.push_back(p + " (" + describe(d.id()) + ")");
  }
  return items.empty() ? "no datasets" : join(items, ", ");
}

void read_leading_rows(hid_t dset, Native mem, int64_t rows, void* out) {
  const std::vector<int64_t> dims = dims_of(dset);
  if (dims.empty() || rows < 0 || rows > dims[0])
    throw std::invalid_argument("h5::read_leading_rows: " + std::to_string(rows) + " rows of a dataset of rank " +
                                std::to_string(dims.size()));
  if (rows == 0) return;
  std::vector<hsize_t> start(dims.size(), 0), count(dims.begin(), dims.end());
  count[0] = static_cast<hsize_t>(rows);
  Handle space(BS_H5_CHECK(H5Dget_space(dset)), H5Sclose);
  BS_H5_CHECK(H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr));
  Handle mspace(BS_H5_CHECK(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr)), H5Sclose);
  BS_H5_CHECK(H5Dread(dset, native_type(mem), mspace.id(), space.id(), H5P_DEFAULT, out));
}

void start_swmr(hid_t file) { BS_H5_WRITE(file, H5Fstart_swmr_write(file)); }

void flush(hid_t file) { BS_H5_WRITE(file, H5Fflush(file, H5F_SCOPE_GLOBAL)); }

std::string library_version() {
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  return std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(rel);
}

}  // namespace bs::h5
