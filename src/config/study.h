#pragma once
// The study: one YAML file, resolved (defaults filled, --set applied, sweep
// expanded) into plain structs. Nothing here knows about MPI or LibTorch.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace bs {

struct DataSpec {
  std::string name = "fashion-mnist";  // fashion-mnist | mnist | synthetic | hdf5
  std::string root;                    // folder with the IDX files (.gz or raw)
  // hdf5 only: the file, its four datasets, and the standardization of uint8
  // inputs (x / 255 - mean) / stdev; NaN: computed from the training split.
  std::string path;
  std::string train_x = "/train/x", train_y = "/train/y", test_x = "/test/x", test_y = "/test/y";
  double mean = std::numeric_limits<double>::quiet_NaN();
  double stdev = std::numeric_limits<double>::quiet_NaN();
  // hdf5 only: the rows of train_x and test_x, read from the file by the parser.
  int64_t hdf5_train_rows = 0, hdf5_test_rows = 0;
  int64_t train_size = 0;  // 0: the whole split; else the first N samples
  int64_t test_size = 0;
  // synthetic only: sizes and the class-separating noise level
  int64_t synthetic_train = 8192;
  int64_t synthetic_test = 2048;
  double synthetic_noise = 1.0;

  int64_t full_train_size() const;  // before the train_size cut
  int64_t full_test_size() const;
  int64_t effective_train_size() const;
  int64_t effective_test_size() const;
};

struct ModelSpec {
  std::string name = "mlp";  // mlp | cnn | torchscript
  std::vector<int64_t> hidden{512, 256};
  std::string path;                    // torchscript: the saved module (torch.jit.save)
  std::string init = "file";           // torchscript: file (the saved weights) | seeded
  std::string loss = "cross_entropy";  // cross_entropy (int64 labels) | mse (float targets)
};

struct OptimizerSpec {
  std::string name = "sgd";  // sgd | adam
  double lr = 0.05;          // base lr, at ref_batch
  int64_t ref_batch = 128;
  std::string scaling = "none";        // none | linear | sqrt
  std::string beta2_scaling = "none";  // adam: none | half_life (beta2 ** (B / ref_batch))
  std::string schedule = "constant";   // constant | cosine
  double warmup_epochs = 0;
  int64_t warmup_steps = 0;
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

struct BudgetSpec {
  double epochs = 0;  // exactly one of epochs, steps is > 0
  int64_t steps = 0;
};

// eval.sharpness: the Hessian's top eigenvalue of the mean training loss over
// the first `samples` of the training subset, by power iteration
// (train/sharpness.h). Off when the study has no eval.sharpness.
struct SharpnessSpec {
  // The defaults keep the cost under 10 % of a CPU study that evaluates every
  // 0.25 epochs: one measurement per epoch (every 4th evaluation, none at
  // step 0) of a 256-sample subset, to 1 % (docs/metrics.md "Sharpness").
  static constexpr int64_t kDefaultEvery = 4;
  int64_t every = 0;        // at evaluations every, 2 every, ... (the step-0 one is the 0th); 0: off
  bool at_start = false;    // also at the step-0 evaluation
  int64_t iterations = 20;  // at most this many Hessian-vector products
  int64_t samples = 256;    // the first samples of the evaluation's training subset
  double tolerance = 1e-2;  // stop when the estimate changes by less than this, relative

  bool enabled() const { return every > 0; }
};

struct EvalSpec {
  double every_epochs = 0;  // at most one of every_epochs, every_steps is > 0
  int64_t every_steps = 0;
  int64_t train_subset = 10000;
  int64_t batch = 1000;
  SharpnessSpec sharpness;
};

struct LogSpec {
  int64_t every_steps = 20;
  double flush_seconds = 10;
  double progress_seconds = 5;
};

// GPU-only settings; a CPU study ignores them (gpu.graphs: on there is an error).
struct GpuSpec {
  std::string graphs = "auto";  // auto | on | off: replay each step from CUDA graphs (train/step_graph.h)
};

struct CheckpointSpec {
  int64_t every_steps = 0;    // 0: not by steps
  double every_minutes = 10;  // 0: not by time; checkpoints also happen on SIGTERM / SIGUSR1
};

// The noise EMA's factor per step: set by samples (the default; the same
// amount of data at every batch size) or, with ema_beta, by steps.
struct GnsSpec {
  double ema_samples = 10000;  // > 0: in effect; 0 when the file sets ema_beta
  double ema_beta = 0.99;      // in effect only when ema_samples is 0
  int64_t microbatches = 1;    // m: each rank's batch is split into m micro-batches
  bool per_layer = false;      // also store per-parameter-tensor squared norms

  // The EMA factor of one step of `global_batch` samples: exp(-B / ema_samples),
  // or ema_beta when that is set.
  double step_beta(int64_t global_batch) const;
};

// Steps-to-result (Shallue et al. 2018): the first evaluation at which the
// metric reaches the value is recorded; with stop, the run ends there.
struct TargetSpec {
  std::string metric = "none";  // none | val_error | val_acc | val_loss | train_loss
  double value = 0;
  bool stop = true;

  bool enabled() const { return metric != "none"; }
  // Whether an evaluation meets the target.
  bool reached(double val_loss, double val_acc, double train_loss) const;
};

struct RunSpec {
  std::string name;
  std::vector<int64_t> batch_per_rank;
  double lr = 0;  // base lr, at optimizer.ref_batch
  uint64_t seed = 1;

  int ranks() const { return static_cast<int>(batch_per_rank.size()); }
  int64_t global_batch() const;
};

struct Study {
  std::string file;  // where it came from, for messages
  std::string name;
  std::string output;
  uint64_t seed = 0;
  std::string device = "auto";  // auto | cpu | cuda (see placement/device_plan.h)
  std::string comm = "auto";    // auto | mpi | nccl
  double comm_timeout_s = 300;  // an NCCL collective unfinished this long aborts the job
  DataSpec data;
  ModelSpec model;
  OptimizerSpec optimizer;
  BudgetSpec budget;
  EvalSpec eval;
  LogSpec log;
  GnsSpec gns;
  TargetSpec target;
  CheckpointSpec checkpoint;
  GpuSpec gpu;
  std::vector<RunSpec> runs;
  std::string resolved_yaml;  // the study after --set, for provenance
};

// Derived per-run quantities shared by `plan`, the trainer and the run file.
struct RunBudget {
  int64_t train_size = 0;
  int64_t steps_per_epoch = 0;
  int64_t total_steps = 0;
  int64_t eval_every_steps = 0;  // 0: only at start and end
  int64_t warmup_steps = 0;
  double peak_lr = 0;
  double beta2 = 0;  // adam's beta2 for this batch (optimizer.beta2_scaling)
};
RunBudget run_budget(const Study& study, const RunSpec& run);
// Adam's beta2 at a global batch: optimizer.beta2, or with beta2_scaling
// half_life beta2 ** (B / ref_batch).
double adam_beta2(const OptimizerSpec& optimizer, int64_t global_batch);

// Reads and validates; throws ConfigError naming the file, key and valid values.
Study load_study(const std::string& path, const std::vector<std::string>& overrides = {});
Study parse_study(const std::string& yaml_text, const std::string& file_label,
                  const std::vector<std::string>& overrides = {});

std::string run_yaml(const Study& study, const RunSpec& run);

// Every key a study file accepts, dotted ("optimizer.lr"; "runs[].batch" for a
// run's keys), in the order the parser looks them up. It is the parser's own
// list: the keys looked up while parsing a study that has every section.
std::vector<std::string> study_keys();

}  // namespace bs
