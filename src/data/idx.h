#pragma once
// IDX files (the MNIST family's format), gzip-compressed or raw.
#include <cstdint>
#include <string>
#include <vector>

namespace bs {

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

// Reads a ubyte IDX file; throws DataError naming the file and what is wrong.
IdxArray read_idx(const std::string& path);

}  // namespace bs
