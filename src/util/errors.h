#pragma once
// Typed exceptions above the C library boundaries. `main` maps each type to an
// exit code (see README "Exit codes"), so a researcher's script can tell a bad
// study file from a crashed run.
#include <stdexcept>
#include <string>
#include <vector>

namespace bs {

// Bad study file, bad --set, bad command line: detected identically on every
// rank before any training, so every rank can exit cleanly with code 2.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& file, const std::string& key, const std::string& reason);
  const std::string& file() const { return file_; }
  const std::string& key() const { return key_; }
  // what() without the file and key, for rethrowing under another key.
  const std::string& reason() const { return reason_; }

 private:
  std::string file_, key_, reason_;
};

// A world size or rank layout that cannot serve the study (exit code 2).
class LayoutError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Missing or malformed data files (exit code 3).
class DataError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A failed call into MPI, HDF5, NCCL or CUDA (exit code 4).
class LibraryError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Output folder problems: a run file exists, or the folder or a checkpoint in
// it cannot be written (exit code 5). A checkpoint that cannot be written is
// this, not a CheckpointError: nothing was refused.
class OutputError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Refused checkpoint: torn, damaged, for a different study or layout, or
// ahead of its run file (exit code 6).
class CheckpointError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string join(const std::vector<std::string>& items, const std::string& sep);

}  // namespace bs
