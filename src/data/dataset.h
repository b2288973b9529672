#pragma once
// Datasets in host memory, small enough to move to the device whole
// (Fashion-MNIST is 47 MB): the built-in IDX and synthetic sets, and any
// array data set in an HDF5 file (x [N, ...], y [N] or [N, k]).
#include <cstdint>
#include <string>
#include <vector>

#include "config/study.h"

namespace bs {

// What a sample's input is stored as: uint8 (standardized on the device as
// (x / 255 - mean) / stdev) or float32 (used as stored).
enum class InputType { U8, F32 };
// What the loss compares the output with: int64 class labels (cross_entropy)
// or float targets (mse).
enum class TargetType { Class, Float };

struct Dataset {
  int64_t size = 0;
  std::vector<int64_t> sample_shape{1, 28, 28};  // x is [size, sample_shape...]
  InputType input_type = InputType::U8;
  std::vector<uint8_t> images;    // U8: size * sample_numel()
  std::vector<float> features;    // F32: size * sample_numel()
  float mean = 0.f, stdev = 1.f;  // U8 only: normalization of x / 255
  TargetType target_type = TargetType::Class;
  int64_t num_classes = 10;           // Class: labels are in [0, num_classes)
  std::vector<int64_t> labels;        // Class: size
  std::vector<int64_t> target_shape;  // Float: per sample, [] or [k]
  std::vector<float> targets;         // Float: size * target_numel()

  int64_t sample_numel() const;
  int64_t target_numel() const;
  // Bytes of x and y as loaded (host) and as held on the device.
  int64_t bytes() const;
};

struct DataSplits {
  Dataset train, test;
};

// The IDX files a dataset needs, resolved against data.root (.gz preferred).
// Throws DataError naming the missing file, the key data.root and the package.
std::vector<std::string> data_files(const std::string& study_file, const DataSpec& spec);

// Loads both splits, cut to data.train_size / data.test_size. For hdf5: x and y
// are checked (lengths, dtypes, NaN/Inf, labels >= 0) and the splits agree on
// shapes; num_classes is 1 + the largest label of either split. Throws
// DataError naming the file, the dataset and the config key.
DataSplits load_data(const std::string& study_file, const DataSpec& spec, uint64_t study_seed);

// The loss against the targets the data holds: cross_entropy needs class
// labels, mse float targets. Throws ConfigError(study_file, "model.loss")
// naming what the data holds and the loss that fits it.
void check_loss_fits(const std::string& study_file, const std::string& loss, const DataSplits& d);

}  // namespace bs
