#pragma once
// Datasets as uint8 images and int64 labels in host memory: small enough to
// move to the device whole (Fashion-MNIST is 47 MB), and normalized there.
#include <cstdint>
#include <string>
#include <vector>

#include "config/study.h"

namespace bs {

struct Dataset {
  int64_t size = 0;
  int64_t channels = 1, height = 28, width = 28;
  int64_t num_classes = 10;
  std::vector<uint8_t> images;    // size * channels * height * width
  std::vector<int64_t> labels;    // size
  float mean = 0.f, stdev = 1.f;  // normalization of image / 255
};

struct DataSplits {
  Dataset train, test;
};

// The IDX files a dataset needs, resolved against data.root (.gz preferred).
// Throws DataError naming the missing file, the key data.root and the package.
std::vector<std::string> data_files(const std::string& study_file, const DataSpec& spec);

// Loads both splits, cut to data.train_size / data.test_size.
DataSplits load_data(const std::string& study_file, const DataSpec& spec, uint64_t study_seed);

}  // namespace bs
