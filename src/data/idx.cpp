#include "data/idx.h"

#include <memory>

#include <zlib.h>

#include "util/errors.h"

namespace bs {
namespace {
struct GzCloser {
  void operator()(gzFile_s* f) const {
    if (f) gzclose(f);
  }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

void read_exact(gzFile_s* f, void* buf, size_t n, const std::string& path, const char* what) {
  size_t got = 0;
  auto* p = static_cast<unsigned char*>(buf);
  while (got < n) {
    unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - got, 1u << 30));
    int r = gzread(f, p + got, chunk);
    if (r <= 0)
      throw DataError(path + ": truncated IDX file (" + what + ": expected " + std::to_string(n) + " bytes, got " +
                      std::to_string(got) + ")");
    got += static_cast<size_t>(r);
  }
}
}  // namespace

IdxArray read_idx(const std::string& path) {
  // gzopen reads raw files transparently, so one path serves .gz and plain IDX.
  GzFile f(gzopen(path.c_str(), "rb"));
  if (!f) throw DataError(path + ": cannot open IDX file");
  unsigned char magic[4];
  read_exact(f.get(), magic, 4, path, "header");
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] < 1 || magic[3] > 4)
    throw DataError(path + ": not an unsigned-byte IDX file (bad magic number)");
  IdxArray a;
  int64_t count = 1;
  for (int i = 0; i < magic[3]; ++i) {
    unsigned char d[4];
    read_exact(f.get(), d, 4, path, "dimensions");
    int64_t dim = (int64_t{d[0]} << 24) | (d[1] << 16) | (d[2] << 8) | d[3];
    if (dim <= 0) throw DataError(path + ": IDX dimension " + std::to_string(i) + " is zero");
    a.dims.push_back(dim);
    count *= dim;
  }
  if (count > (int64_t{1} << 34)) throw DataError(path + ": IDX file claims an implausible size");
  a.data.resize(static_cast<size_t>(count));
  read_exact(f.get(), a.data.data(), a.data.size(), path, "data");
  // Bytes past the counted items mean the header and the data disagree (two
  // files concatenated, a converter's wrong count): refuse, never guess.
  unsigned char extra = 0;
  if (gzread(f.get(), &extra, 1) > 0)
    throw DataError(path + ": IDX file has more data than its header counts (" + std::to_string(count) +
                    " items); the header or the file is wrong");
  return a;
}

}  // namespace bs
