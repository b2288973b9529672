#pragma once
// The run file (docs/run-file.md): created whole before training, then SWMR
// appends. Only the group's first rank owns one.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "hdf5/h5.h"
#include "trace/run_file_columns.h"
#include "train/records.h"

namespace bs {

struct RunFileHeader {
  std::vector<std::pair<std::string, std::string>> str_attrs;
  std::vector<std::pair<std::string, int64_t>> int_attrs;
  std::vector<std::pair<std::string, double>> float_attrs;
  std::vector<int32_t> world_ranks;
  std::vector<std::string> hosts, devices;
  std::vector<int32_t> batch_per_rank;
  std::vector<int32_t> batch_micro;  // n*m micro-batch sizes, rank-major
  std::vector<std::string> layers;
  std::vector<int32_t> layer_numel;
  bool per_layer = false;  // create the per-layer norm datasets
  int64_t global_batch = 0, train_size = 0, test_size = 0;
  std::vector<int64_t> sharpness_subset;  // eval.sharpness's training-set indices; empty when off
};

// 3 added /eval/sharpness*, /layout/sharpness_subset and /final/params.
inline constexpr int64_t kSchemaVersion = 3;

// What a run file on disk says of its run: read back by the study runner for
// runs that finished in an earlier job (resume, summary).
struct RunFileSummary {
  RunStatus status = RunStatus::Running;
  int64_t steps = 0;         // /status/step
  int64_t target_step = -1;  // /target/step
  // One NaN when the run never evaluated, so back() is always safe.
  std::vector<double> val_acc;            // /eval/val_acc, every evaluation
  double final_train_acc = std::nan("");  // last /eval/train_acc
  double wall_s = 0;                      // last /train/wall_s
};
// Both throw LibraryError naming the file when it cannot be read.
RunStatus read_run_status(const std::string& path);  // /status/code only
RunFileSummary read_run_summary(const std::string& path);

// Why --resume cannot use the run file at `path`, e.g. "it is not an HDF5
// file"; empty when it opens and read_run_summary reads it. Only reads.
std::string run_file_damage(const std::string& path);
// Throws CheckpointError naming the file and a column when the run file holds
// fewer rows than RunFile::resume copies for a checkpoint at train_rows steps
// and eval_rows evaluations (per_layer: the study's gns.per_layer); throws
// LibraryError when it cannot be read.
void require_rows(const std::string& path, bool per_layer, int64_t train_rows, int64_t eval_rows);

// The HDF5 library that writes run files, for their provenance (version_hdf5).
std::string hdf5_version();

class RunFile {
 public:
  // Throws std::invalid_argument for an inconsistent header, LibraryError when
  // HDF5 cannot create the file.
  RunFile(const std::string& path, const RunFileHeader& header, double flush_seconds);
  ~RunFile();

  // Continues the run file at `path` from a checkpoint: a new file with the
  // header and the old file's first train_rows steps and eval_rows evaluations
  // replaces it (atomically), so the trace has no duplicate and no missing
  // step, whether the old writer closed the file or was killed. Throws
  // CheckpointError when the old file holds fewer rows than the checkpoint,
  // OutputError when the new file cannot take the old one's place.
  static std::unique_ptr<RunFile> resume(const std::string& path, const RunFileHeader& header, double flush_seconds,
                                         int64_t train_rows, int64_t eval_rows, int64_t target_step,
                                         int64_t target_samples);
  RunFile(const RunFile&) = delete;
  RunFile& operator=(const RunFile&) = delete;

  void append(const std::vector<StepRecord>& rows);
  void append(const EvalRecord& row);
  void set_status(RunStatus status, int64_t step);
  void set_target_reached(int64_t step, int64_t samples);
  // /final/params of a completed run (float32, flat, in /layout/layers order).
  void write_final_params(const std::vector<float>& params);
  // Flushes when flush_seconds have passed since the last flush (a timer, not
  // per step: an HDF5 flush costs milliseconds).
  void maybe_flush();
  void flush();
  const std::string& path() const { return path_; }

 private:
  RunFile(const std::string& path, const RunFileHeader& header, double flush_seconds, int);  // header has defaults
  void create(const RunFileHeader& header);
  void copy_rows(const std::string& old_path, int64_t train_rows, int64_t eval_rows);
  hid_t dset(size_t column) const { return dsets_[column].id(); }
  std::string path_;
  ColumnDims dims_;  // layers 0 without per_layer
  double flush_seconds_;
  std::chrono::steady_clock::time_point last_flush_;
  h5::Handle file_;
  // One per entry of run_file_columns(); invalid for /layout (written once
  // and closed) and for the per-layer columns of a file without them.
  std::vector<h5::Handle> dsets_;
};

}  // namespace bs
