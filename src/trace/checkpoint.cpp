#include "trace/checkpoint.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

namespace bs {
namespace {

// "BSCKPT" and a two-digit format version. 02 added the model's buffers, 03
// the last evaluation's sharpness; a checkpoint of another version is
// refused, naming both versions.
constexpr char kMagic[8] = {'B', 'S', 'C', 'K', 'P', 'T', '0', '3'};
constexpr size_t kVersionAt = 6;  // where the version digits start in kMagic

// A flat little-endian byte stream of typed fields, in a fixed order.
class Writer {
 public:
  template <typename T>
  void pod(const T& v) {
    const auto* p = reinterpret_cast<const char*>(&v);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  void floats(const std::vector<float>& v) { array(v); }
  void doubles(const std::vector<double>& v) { array(v); }
  const std::string& bytes() const { return bytes_; }

 private:
  // A count, then the values.
  template <typename T>
  void array(const std::vector<T>& v) {
    pod<uint64_t>(v.size());
    const auto* p = reinterpret_cast<const char*>(v.data());
    bytes_.insert(bytes_.end(), p, p + v.size() * sizeof(T));
  }
  std::string bytes_;
};

class Reader {
 public:
  Reader(const std::string& bytes, const std::string& path) : b_(bytes), path_(path) {}
  template <typename T>
  T pod() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str() {
    auto n = pod<uint64_t>();
    need(n);
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::vector<float> floats() { return array<float>(); }
  std::vector<double> doubles() { return array<double>(); }
  bool done() const { return pos_ == b_.size(); }

 private:
  // A count, then that many values; a count larger than the bytes left is
  // refused before anything is allocated.
  template <typename T>
  std::vector<T> array() {
    const auto n = pod<uint64_t>();
    if (n > (b_.size() - pos_) / sizeof(T)) ends_early();
    std::vector<T> v(n);
    std::memcpy(v.data(), b_.data() + pos_, n * sizeof(T));
    pos_ += n * sizeof(T);
    return v;
  }
  void need(uint64_t n) {
    if (n > b_.size() - pos_) ends_early();
  }
  [[noreturn]] void ends_early() const {
    throw CheckpointError(path_ + ": checkpoint payload ends early (damaged file, or written by another format)");
  }
  const std::string& b_;
  std::string path_;
  size_t pos_ = 0;
};

// A checkpoint that cannot be written is a problem of the output folder (exit
// 5), not a refused checkpoint (exit 6): the message says which.
[[noreturn]] void unwritable(const std::string& what) {
  throw OutputError(what + ": " + std::strerror(errno) +
                    " (checkpoints go under the study's 'output' folder: it must be writable, with space left)");
}

// A full disk shows in write(), or (on file systems that allocate late: NFS,
// XFS, btrfs) only in fsync() or close(): all three are checked.
void write_file_synced(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) unwritable("cannot write checkpoint " + path);
  const auto fail = [&] {
    const int err = errno;
    ::close(fd);
    errno = err;
    unwritable("cannot write checkpoint " + path);
  };
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::write(fd, data.data() + off, data.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail();
    off += static_cast<size_t>(w);
  }
  // The rename below must never expose a file whose bytes are not on disk.
  if (::fsync(fd) != 0) fail();
  if (::close(fd) != 0) unwritable("cannot write checkpoint " + path);
}

void rename_or_throw(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) unwritable("cannot rename checkpoint " + from + " to " + to);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path + ": cannot read checkpoint");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint32_t crc_of(const std::string& s) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = reinterpret_cast<const Bytef*>(s.data());
  size_t left = s.size();
  while (left > 0) {
    uInt chunk = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
    crc = crc32(crc, p, chunk);
    p += chunk;
    left -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace

std::string checkpoint_path(const std::string& output, const std::string& run) {
  return output + "/checkpoints/" + run + ".ckpt";
}

bool checkpoint_exists(const std::string& path) {
  struct stat st {};
  return ::stat((path + ".done").c_str(), &st) == 0;
}

void write_checkpoint(const std::string& path, const Checkpoint& c) {
  Writer w;
  w.pod<uint64_t>(c.fingerprint.size());
  for (const auto& kv : c.fingerprint) {
    w.str(kv.first);
    w.str(kv.second);
  }
  const TrainState& s = c.state;
  w.pod(s.step);
  w.pod(s.eval_rows);
  w.pod(s.wall_s);
  w.pod(s.best_val_acc);
  w.pod(s.target_step);
  w.pod(s.last_eval);
  w.floats(s.params);
  w.pod(s.opt_steps);
  w.pod<uint64_t>(s.opt_bufs.size());
  for (const auto& b : s.opt_bufs) w.floats(b);
  w.pod(s.ema_tr);
  w.pod(s.ema_g2);
  w.pod(s.ema_beta_pow);
  w.doubles(s.buffers);

  const std::string& payload = w.bytes();
  std::string file(kMagic, sizeof kMagic);
  const uint64_t size = payload.size();
  const uint32_t crc = crc_of(payload);
  file.append(reinterpret_cast<const char*>(&size), sizeof size);
  file.append(reinterpret_cast<const char*>(&crc), sizeof crc);
  file += payload;

  // Both new files are written in full before the previous checkpoint is
  // touched: a write that fails (a full disk) leaves the previous checkpoint
  // and its marker as they were, and its temporary files are removed, so they
  // hold no space the next try needs. Renames take no space.
  const std::string tmp = path + ".tmp", done_tmp = path + ".done.tmp";
  try {
    write_file_synced(tmp, file);
    write_file_synced(done_tmp, std::to_string(s.step) + "\n");
    // Marker first removed, so a crash between the two renames leaves no
    // marker (the checkpoint counts as absent) rather than a marker for the
    // old step.
    std::remove((path + ".done").c_str());
    rename_or_throw(tmp, path);
    rename_or_throw(done_tmp, path + ".done");
  } catch (...) {
    std::remove(tmp.c_str());
    std::remove(done_tmp.c_str());
    throw;
  }
}

Checkpoint read_checkpoint(const std::string& path) {
  if (!checkpoint_exists(path))
    throw CheckpointError(path + ": no completion marker " + path + ".done (the checkpoint was never finished)");
  const std::string file = read_all(path);
  const size_t head = sizeof kMagic + sizeof(uint64_t) + sizeof(uint32_t);
  if (file.size() < head || std::memcmp(file.data(), kMagic, kVersionAt) != 0)
    throw CheckpointError(path + ": not a batchscope checkpoint (bad magic)");
  if (std::memcmp(file.data(), kMagic, sizeof kMagic) != 0)
    throw CheckpointError(path + ": checkpoint format version " + file.substr(kVersionAt, 2) +
                          ", this batchscope reads version " + std::string(kMagic + kVersionAt, 2) +
                          "; remove it and its .done marker to restart the run");
  uint64_t size = 0;
  uint32_t crc = 0;
  std::memcpy(&size, file.data() + sizeof kMagic, sizeof size);
  std::memcpy(&crc, file.data() + sizeof kMagic + sizeof size, sizeof crc);
  if (file.size() - head != size)
    throw CheckpointError(path + ": torn checkpoint (" + std::to_string(file.size() - head) +
                          " payload bytes, header says " + std::to_string(size) +
                          "); remove it and its .done marker to restart the run");
  const std::string payload = file.substr(head);
  if (crc_of(payload) != crc)
    throw CheckpointError(path +
                          ": checkpoint checksum mismatch (damaged file); remove it and its .done marker to "
                          "restart the run");
  Reader r(payload, path);
  Checkpoint c;
  const auto n = r.pod<uint64_t>();
  for (uint64_t i = 0; i < n; ++i) {
    std::string k = r.str();
    c.fingerprint[k] = r.str();
  }
  TrainState& s = c.state;
  s.step = r.pod<int64_t>();
  s.eval_rows = r.pod<int64_t>();
  s.wall_s = r.pod<double>();
  s.best_val_acc = r.pod<double>();
  s.target_step = r.pod<int64_t>();
  s.last_eval = r.pod<EvalRecord>();
  s.params = r.floats();
  s.opt_steps = r.pod<int64_t>();
  const auto bufs = r.pod<uint64_t>();
  if (bufs > 16) throw CheckpointError(path + ": implausible optimizer state (damaged file)");
  for (uint64_t i = 0; i < bufs; ++i) s.opt_bufs.push_back(r.floats());
  s.ema_tr = r.pod<double>();
  s.ema_g2 = r.pod<double>();
  s.ema_beta_pow = r.pod<double>();
  s.buffers = r.doubles();
  if (!r.done()) throw CheckpointError(path + ": trailing bytes after the checkpoint payload (damaged file)");
  return c;
}

void require_same(const std::string& path, const Fingerprint& saved, const Fingerprint& now) {
  std::string diff;
  for (const auto& kv : now) {
    auto it = saved.find(kv.first);
    const std::string was = it == saved.end() ? "(absent)" : it->second;
    if (was != kv.second) diff += "\n  " + kv.first + ": checkpoint has " + was + ", the study now has " + kv.second;
  }
  if (!diff.empty())
    throw CheckpointError(
        path + ": checkpoint was written for a different study, rank layout or input file:" + diff +
        "\nresume with the original study, layout and files, or remove the checkpoint (and the run file) "
        "to start this run again");
}

void remove_checkpoint(const std::string& path) {
  std::remove((path + ".done").c_str());
  std::remove(path.c_str());
}

}  // namespace bs
