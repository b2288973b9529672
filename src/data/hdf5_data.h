#pragma once
// Any array data set in an HDF5 file (data.name: hdf5): per split, x [N, ...]
// and y [N] (class labels or float targets) or [N, k] (float targets), at the
// paths data.train_x, data.train_y, data.test_x, data.test_y of data.path.
#include <cstdint>
#include <string>
#include <vector>

#include "config/study.h"
#include "data/dataset.h"

namespace bs {

// What the file's headers tell, without reading a row: the four datasets
// exist, their dtypes are supported, x and y have as many rows, the splits
// agree on sample shape, input and target kinds, data.mean / data.stdev come
// only with uint8 x, and both splits, cut to data.train_size / test_size, fit
// the host's available memory. Returns {spec.path}. Throws ConfigError (the
// path is not a file; mean or stdev with float x) or DataError naming the
// file, the dataset and its config key.
std::vector<std::string> hdf5_data_files(const std::string& study_file, const DataSpec& spec);

// The checks above, then the first train_size / test_size rows of each split
// (a hyperslab: no more is read) and their values: no NaN or Inf in float x
// or y, class labels >= 0. uint8 x is kept as bytes with data.mean /
// data.stdev, or those computed over the training split's x / 255.
DataSplits load_hdf5(const std::string& study_file, const DataSpec& spec);

// The host's available memory in bytes (MemAvailable in /proc/meminfo), or -1
// where it is unknown.
int64_t available_memory_bytes();
// Throws DataError when `needed` bytes exceed `available` (when that is >= 0),
// naming the file, both sizes in MB and data.train_size.
void check_fits_memory(const std::string& file, int64_t needed, int64_t available);

}  // namespace bs
