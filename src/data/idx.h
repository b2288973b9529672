#pragma once
// IDX files (the MNIST family's format), gzip-compressed or raw.
#include <cstdint>
#include <string>
#include <vector>

namespace bs {

struct IdxArray {
  std::vector<int64_t> dims;  // as the header says, whatever was read
  std::vector<uint8_t> data;  // the first rows (along dims[0]) read, row-major
};

// Reads a ubyte IDX file; throws DataError naming the file and what is wrong.
IdxArray read_idx(const std::string& path);

// Reads only the first `rows` rows (along dims[0]; all of them when rows <= 0
// or rows >= dims[0]), so a cut data set inflates a fraction of the file. The
// file's length is still checked against its header first, from the size of a
// raw file or a gzip file's length trailer; when they disagree the whole file
// is read as read_idx(path) does, so a cut or overlong file gives the same
// DataError either way. Only damage inside the compressed bytes past the rows
// read goes unnoticed (their CRC is not checked).
IdxArray read_idx(const std::string& path, int64_t rows);

}  // namespace bs
