#pragma once
// Trains runs of one replica group. Torch-free interface (pimpl), so the app
// and the tests that drive it compile without LibTorch headers.
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "config/study.h"
#include "data/dataset.h"
#include "train/records.h"
#include "train/train_state.h"

namespace bs {

// Receives what the trainer measured; only the group's first rank has one.
class RecordSink {
 public:
  virtual ~RecordSink() = default;
  virtual void on_steps(const std::vector<StepRecord>& rows) = 0;
  virtual void on_eval(const EvalRecord& row) = 0;
  virtual void on_target(int64_t /*step*/, int64_t /*samples*/) {}
  // A consistent state to persist: every record up to state.step has been
  // delivered to on_steps / on_eval before this is called.
  virtual void on_checkpoint(const TrainState& /*state*/) {}
};

struct RunResult {
  RunStatus status = RunStatus::Running;
  int64_t steps = 0;
  int64_t samples = 0;
  double wall_s = 0;
  double samples_per_s = 0;
  EvalRecord final_eval;
  double best_val_acc = 0;
  int64_t target_step = -1;         // first eval step that met the study's target; -1: never
  std::vector<float> final_params;  // only with TrainerOptions::keep_final_params
};

struct TrainerOptions {
  bool keep_final_params = false;
  int gpu = -1;  // CUDA device to train on (DevicePlan::gpu); -1: the CPU
  // false: skip the squared norms behind the noise estimate (their columns
  // stay 0); only `bench --no-noise-stats` does, to measure what they cost.
  bool noise_statistics = true;
  // Replay each step from CUDA graphs (DevicePlan::graphs); needs gpu >= 0.
  bool graphs = false;
};

class Trainer {
 public:
  // Moves the data to the device once; it serves every run of the group.
  Trainer(const Study& study, const DataSplits& data, Communicator& comm, TrainerOptions options = {});
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // resume: continue from a checkpoint's state instead of from initialization.
  // A stop signal (util/signals.h) seen by any rank of the group ends the run
  // at the next log interval with a checkpoint and status Preempted.
  RunResult run(const RunSpec& run, RecordSink* sink, const TrainState* resume = nullptr);
  // TrainerOptions::noise_statistics for the runs that follow: `bench --pair
  // stats` alternates both on one trainer, so that only the switch differs.
  void set_noise_statistics(bool on);
  int64_t num_params() const;
  // Parameter tensors in flat-buffer order, and their sizes (for per-layer norms).
  std::vector<std::string> layer_names() const;
  std::vector<int64_t> layer_numel() const;
  // The model's buffers (BatchNorm running statistics; per rank, averaged
  // over the group at every drain), and where its initial weights come from
  // ("builtin", "file", "seeded").
  std::vector<std::string> buffer_names() const;
  std::string init_source() const;
  // eval.sharpness's subset: training-set indices, the same for every run of
  // the study; empty when sharpness is off.
  std::vector<int64_t> sharpness_subset() const;

 private:
  struct Impl;
  friend class RunLoop;  // one run's step loop (trainer.cpp)
  std::unique_ptr<Impl> impl_;
};

}  // namespace bs
