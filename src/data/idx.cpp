#include "data/idx.h"

#include <cstdio>
#include <memory>

#include <sys/stat.h>
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

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

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

// The magic number and the dimensions; `bytes` is the header's length.
struct Header {
  std::vector<int64_t> dims;
  int64_t count = 1;  // items the header counts
  int64_t bytes = 4;
};

Header read_header(gzFile_s* f, const std::string& path) {
  unsigned char magic[4];
  read_exact(f, magic, 4, path, "header");
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] < 1 || magic[3] > 4)
    throw DataError(path + ": not an unsigned-byte IDX file (bad magic number)");
  Header h;
  for (int i = 0; i < magic[3]; ++i) {
    unsigned char d[4];
    read_exact(f, d, 4, path, "dimensions");
    int64_t dim = (int64_t{d[0]} << 24) | (d[1] << 16) | (d[2] << 8) | d[3];
    if (dim <= 0) throw DataError(path + ": IDX dimension " + std::to_string(i) + " is zero");
    h.dims.push_back(dim);
    h.count *= dim;
    h.bytes += 4;
  }
  if (h.count > (int64_t{1} << 34)) throw DataError(path + ": IDX file claims an implausible size");
  return h;
}

// Whether the file holds exactly `bytes` bytes of IDX, without inflating it: a
// raw file's size, or the gzip trailer's ISIZE (the inflated length modulo
// 2^32, the file's last 4 bytes, little-endian). A cut gzip file ends in
// arbitrary bytes, so it almost surely disagrees; any doubt answers false.
bool length_matches(const std::string& path, int64_t bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  File f(std::fopen(path.c_str(), "rb"));
  unsigned char magic[2];
  if (!f || std::fread(magic, 1, 2, f.get()) != 2) return false;
  if (magic[0] != 0x1f || magic[1] != 0x8b) return static_cast<int64_t>(st.st_size) == bytes;
  unsigned char isize[4];
  if (st.st_size < 18 || std::fseek(f.get(), -4, SEEK_END) != 0 || std::fread(isize, 1, 4, f.get()) != 4) return false;
  const uint32_t n = uint32_t{isize[0]} | uint32_t{isize[1]} << 8 | uint32_t{isize[2]} << 16 | uint32_t{isize[3]} << 24;
  return n == static_cast<uint32_t>(bytes);
}

// Bytes past the counted items mean the header and the data disagree (two
// files concatenated, a converter's wrong count): refuse, never guess.
void require_end(gzFile_s* f, const std::string& path, int64_t count) {
  unsigned char extra = 0;
  if (gzread(f, &extra, 1) > 0)
    throw DataError(path + ": IDX file has more data than its header counts (" + std::to_string(count) +
                    " items); the header or the file is wrong");
}

}  // namespace

IdxArray read_idx(const std::string& path) { return read_idx(path, 0); }

IdxArray read_idx(const std::string& path, int64_t rows) {
  // gzopen reads raw files transparently, so one path serves .gz and plain IDX.
  GzFile f(gzopen(path.c_str(), "rb"));
  if (!f) throw DataError(path + ": cannot open IDX file");
  gzbuffer(f.get(), 1u << 17);  // fewer, larger reads than the default 8 KiB
  Header h = read_header(f.get(), path);
  const bool part = rows > 0 && rows < h.dims[0] && length_matches(path, h.bytes + h.count);
  const int64_t items = part ? rows * (h.count / h.dims[0]) : h.count;
  IdxArray a;
  a.dims = h.dims;
  a.data.resize(static_cast<size_t>(items));
  read_exact(f.get(), a.data.data(), a.data.size(), path, "data");
  if (!part) require_end(f.get(), path, h.count);
  return a;
}

}  // namespace bs
