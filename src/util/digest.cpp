#include "util/digest.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace bs {
namespace {

constexpr uint64_t kFnv1a64Prime = 0x100000001b3ULL;
constexpr size_t kBlock = size_t{1} << 20;

std::string cannot_read(const std::string& path, int err) {
  return "cannot read " + path + " to take its digest: " + std::strerror(err);
}

// Closes the descriptor on every path out of file_digest.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

uint64_t fnv1a64(const void* data, size_t size, uint64_t hash) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= p[i];
    hash *= kFnv1a64Prime;
  }
  return hash;
}

std::string file_digest(const std::string& path) {
  const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw DataError(cannot_read(path, errno));
  std::vector<unsigned char> block(kBlock);
  uint64_t hash = kFnv1a64Basis, size = 0;
  for (;;) {
    const ssize_t got = ::read(fd.get(), block.data(), block.size());
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw DataError(cannot_read(path, errno));  // a folder: EISDIR
    if (got == 0) break;
    hash = fnv1a64(block.data(), static_cast<size_t>(got), hash);
    size += static_cast<uint64_t>(got);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return std::to_string(size) + " bytes, fnv1a64 " + hex;
}

}  // namespace bs
