#include "config/study.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include "config/sweep.h"
#include "config/yaml_tree.h"
#include "hdf5/h5.h"
#include "util/errors.h"

namespace bs {
namespace {

const std::vector<std::string> kDatasets{"fashion-mnist", "mnist", "synthetic", "hdf5"};
// The keys only data.name hdf5 takes.
const std::vector<std::string> kHdf5Keys{"path", "train_x", "train_y", "test_x", "test_y", "mean", "stdev"};
const char* const kDebianFashionRoot = "/usr/share/datasets/fashion-mnist";

// Each parse_* below looks up every key of its section first, then calls
// reject_unread(), then checks values: the lookups are the section's list of
// valid keys, and a misspelt key is reported before any error that its
// absence causes.

bool file_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void require(bool ok, const Section& s, const std::string& key, const std::string& what) {
  if (!ok) s.fail(key, what);
}

// data.name hdf5: the file and its four datasets exist; the rows of train_x
// and test_x become the full split sizes. What the arrays hold is checked
// where they are read (data/hdf5_data.cpp). A missing dataset is a DataError
// (exit 3), like a missing IDX file, naming the datasets the file has.
void probe_hdf5(const Section& s, DataSpec& d) {
  if (s.has("root")) s.fail("root", "hdf5 reads data.path; root is for the IDX data sets (fashion-mnist, mnist)");
  require(!d.path.empty(), s, "path", "required for hdf5: the HDF5 file that holds the training and test arrays");
  require(file_exists(d.path), s, "path", "'" + d.path + "' does not exist or is not a file");
  const std::pair<const char*, std::string*> arrays[] = {
      {"train_x", &d.train_x}, {"train_y", &d.train_y}, {"test_x", &d.test_x}, {"test_y", &d.test_y}};
  for (const auto& [key, path] : arrays)
    require(!path->empty(), s, key, "must name a dataset in data.path, e.g. /train/x");
  require(std::isnan(d.stdev) || d.stdev > 0, s, "stdev", "must be > 0");
  if (!h5::is_hdf5_file(d.path)) throw DataError(d.path + " (data.path) is not an HDF5 file (no HDF5 signature)");
  const h5::Handle file = h5::open_file_readonly(d.path);
  for (const auto& [key, path] : arrays)
    if (!h5::has_dataset(file.id(), *path))
      throw DataError(d.path + " has no dataset '" + *path + "' (" + s.key(key) + "); set " + s.key(key) +
                      " to one of its datasets: " + h5::describe_datasets(file.id()));
  auto rows = [&](const char* key, const std::string& path) -> int64_t {
    const std::vector<int64_t> dims = h5::dims_of(h5::open_dataset(file.id(), path).id());
    if (dims.empty())
      throw DataError(d.path + ": " + s.key(key) + " ('" + path + "') is a scalar; expected one row per sample");
    if (dims[0] == 0) throw DataError(d.path + ": " + s.key(key) + " ('" + path + "') has no rows");
    return dims[0];
  };
  d.hdf5_train_rows = rows("train_x", d.train_x);
  d.hdf5_test_rows = rows("test_x", d.test_x);
}

DataSpec parse_data(const Section& s) {
  DataSpec d;
  d.name = s.choice("name", d.name, kDatasets);
  d.root = s.str("root", d.name == "fashion-mnist" ? kDebianFashionRoot : "");
  d.path = s.str("path", "");
  d.train_x = s.str("train_x", d.train_x);
  d.train_y = s.str("train_y", d.train_y);
  d.test_x = s.str("test_x", d.test_x);
  d.test_y = s.str("test_y", d.test_y);
  d.mean = s.number("mean", d.mean);
  d.stdev = s.number("stdev", d.stdev);
  d.train_size = s.integer("train_size", 0);
  d.test_size = s.integer("test_size", 0);
  d.synthetic_train = s.integer("synthetic_train", d.synthetic_train);
  d.synthetic_test = s.integer("synthetic_test", d.synthetic_test);
  d.synthetic_noise = s.number("synthetic_noise", d.synthetic_noise);
  s.reject_unread();
  if (d.name == "hdf5")
    probe_hdf5(s, d);
  else
    for (const auto& k : kHdf5Keys)
      if (s.has(k)) s.fail(k, "only data.name hdf5 takes " + k + " (data.name is " + d.name + ")");
  if (d.name == "mnist" && d.root.empty())
    s.fail("root", "required for mnist: a folder with train-images-idx3-ubyte[.gz] and the other 3 IDX files");
  require(d.synthetic_train >= 2, s, "synthetic_train", "must be >= 2");
  require(d.synthetic_test >= 1, s, "synthetic_test", "must be >= 1");
  require(d.synthetic_noise > 0, s, "synthetic_noise", "must be > 0");
  require(d.train_size >= 0 && d.train_size <= d.full_train_size(), s, "train_size",
          "must be between 1 and " + std::to_string(d.full_train_size()) + " (0 or absent: all)");
  require(d.test_size >= 0 && d.test_size <= d.full_test_size(), s, "test_size",
          "must be between 1 and " + std::to_string(d.full_test_size()) + " (0 or absent: all)");
  return d;
}

ModelSpec parse_model(const Section& s) {
  ModelSpec m;
  m.name = s.choice("name", m.name, {"mlp", "cnn", "torchscript"});
  const bool custom_hidden = s.has("hidden");
  m.path = s.str("path", "");
  m.init = s.choice("init", m.init, {"file", "seeded"});
  m.loss = s.choice("loss", m.loss, {"cross_entropy", "mse"});
  s.reject_unread();
  if (custom_hidden) {
    if (m.name != "mlp") s.fail("hidden", "only the mlp model takes hidden sizes (the cnn is fixed)");
    m.hidden = s.int_list("hidden");
    for (auto h : m.hidden) require(h > 0, s, "hidden", "hidden sizes must be positive integers, e.g. [512, 256]");
  }
  if (m.name == "torchscript") {
    require(!m.path.empty(), s, "path", "required for torchscript: the file torch.jit.save wrote");
    require(file_exists(m.path), s, "path", "'" + m.path + "' does not exist or is not a file");
  } else {
    require(!s.has("path"), s, "path", "only model name torchscript takes a path (mlp and cnn are built in)");
    require(!s.has("init"), s, "init", "only model name torchscript takes init (file | seeded)");
  }
  return m;
}

// The optimizer's checks, after its keys are looked up; betas are read here,
// once the optimizer is known to take them.
void check_optimizer(const Section& s, OptimizerSpec& o, bool has_betas) {
  require(o.lr > 0, s, "lr", "must be > 0");
  require(o.ref_batch > 0, s, "ref_batch", "must be a positive batch size");
  require(o.warmup_epochs >= 0, s, "warmup_epochs", "must be >= 0");
  require(o.warmup_steps >= 0, s, "warmup_steps", "must be >= 0");
  if (o.warmup_epochs > 0 && o.warmup_steps > 0)
    s.fail("warmup_steps", "set either warmup_epochs or warmup_steps, not both");
  if (o.name == "adam" && s.has("momentum")) s.fail("momentum", "adam takes betas: [beta1, beta2], not momentum");
  require(o.momentum >= 0 && o.momentum < 1, s, "momentum", "must be in [0, 1)");
  if (o.nesterov && o.momentum <= 0) s.fail("nesterov", "nesterov needs momentum > 0");
  if (o.nesterov && o.name != "sgd") s.fail("nesterov", "only sgd takes nesterov");
  require(o.weight_decay >= 0, s, "weight_decay", "must be >= 0");
  if (has_betas) {
    if (o.name != "adam") s.fail("betas", "only adam takes betas");
    auto b = s.number_list("betas");
    require(b.size() == 2 && b[0] >= 0 && b[0] < 1 && b[1] >= 0 && b[1] < 1, s, "betas",
            "expected [beta1, beta2], each in [0, 1)");
    o.beta1 = b[0];
    o.beta2 = b[1];
  }
  if (o.beta2_scaling != "none" && o.name != "adam")
    s.fail("beta2_scaling", "only adam takes beta2_scaling (optimizer.name is " + o.name + "); use none");
  require(o.eps > 0, s, "eps", "must be > 0");
}

OptimizerSpec parse_optimizer(const Section& s) {
  OptimizerSpec o;
  o.name = s.choice("name", o.name, {"sgd", "adam"});
  o.lr = s.number("lr", o.lr);
  o.ref_batch = s.integer("ref_batch", o.ref_batch);
  o.scaling = s.choice("scaling", o.scaling, {"none", "linear", "sqrt"});
  o.beta2_scaling = s.choice("beta2_scaling", o.beta2_scaling, {"none", "half_life"});
  o.schedule = s.choice("schedule", o.schedule, {"constant", "cosine"});
  o.warmup_epochs = s.number("warmup_epochs", 0);
  o.warmup_steps = s.integer("warmup_steps", 0);
  o.momentum = s.number("momentum", o.name == "sgd" ? o.momentum : 0.0);
  o.nesterov = s.boolean("nesterov", false);
  o.weight_decay = s.number("weight_decay", 0);
  const bool has_betas = s.has("betas");
  o.eps = s.number("eps", o.eps);
  s.reject_unread();
  check_optimizer(s, o, has_betas);
  return o;
}

BudgetSpec parse_budget(const Section& s) {
  BudgetSpec b;
  b.epochs = s.number("epochs", 0);
  b.steps = s.integer("steps", 0);
  s.reject_unread();
  require(b.epochs >= 0, s, "epochs", "must be > 0");
  require(b.steps >= 0, s, "steps", "must be > 0");
  if ((b.epochs > 0) == (b.steps > 0))
    throw ConfigError(s.file(), "budget",
                      "set exactly one of budget.epochs (> 0) or budget.steps (> 0); to switch on the "
                      "command line, replace the mapping: --set 'budget={steps: 50}'");
  return b;
}

// eval.sharpness: present (even as {}) turns it on; its keys are read either
// way, so study_keys() lists them.
SharpnessSpec parse_sharpness(const Section& s, bool given, int64_t train_subset) {
  SharpnessSpec h;
  const int64_t every = s.integer("every", SharpnessSpec::kDefaultEvery);
  h.iterations = s.integer("iterations", h.iterations);
  h.samples = s.integer("samples", h.samples);
  h.tolerance = s.number("tolerance", h.tolerance);
  h.at_start = s.boolean("at_start", h.at_start);
  s.reject_unread();
  if (!given) return h;
  require(every >= 1, s, "every", "must be >= 1 (1: at every evaluation); remove eval.sharpness to turn it off");
  require(h.iterations >= 1 && h.iterations <= 10000, s, "iterations",
          "must be between 1 and 10000 Hessian-vector products, e.g. 20");
  require(h.samples > 0 && h.samples <= train_subset, s, "samples",
          "must be between 1 and eval.train_subset (" + std::to_string(train_subset) +
              "): the first samples of the evaluation's training subset");
  require(std::isfinite(h.tolerance) && h.tolerance >= 0, s, "tolerance",
          "must be >= 0, a relative change, e.g. 1.0e-3 (0: always run all iterations)");
  h.every = every;
  return h;
}

EvalSpec parse_eval(const Section& s) {
  EvalSpec e;
  e.every_epochs = s.number("every_epochs", 0);
  e.every_steps = s.integer("every_steps", 0);
  e.train_subset = s.integer("train_subset", e.train_subset);
  e.batch = s.integer("batch", e.batch);
  const Section sharpness = s.sub("sharpness");
  s.reject_unread();
  e.sharpness = parse_sharpness(sharpness, s.has("sharpness"), e.train_subset);
  require(e.every_epochs >= 0, s, "every_epochs", "must be >= 0 (0: only at start and end)");
  require(e.every_steps >= 0, s, "every_steps", "must be >= 0 (0: only at start and end)");
  if (e.every_epochs > 0 && e.every_steps > 0)
    s.fail("every_steps", "set either eval.every_epochs or eval.every_steps, not both");
  require(e.train_subset >= 0, s, "train_subset", "must be >= 0 (0: no training-set evaluation)");
  require(e.batch > 0, s, "batch", "must be a positive batch size");
  return e;
}

GpuSpec parse_gpu(const Section& s) {
  GpuSpec g;
  g.graphs = s.choice("graphs", g.graphs, {"auto", "on", "off"});
  s.reject_unread();
  return g;
}

LogSpec parse_log(const Section& s) {
  LogSpec l;
  l.every_steps = s.integer("every_steps", l.every_steps);
  l.flush_seconds = s.number("flush_seconds", l.flush_seconds);
  l.progress_seconds = s.number("progress_seconds", l.progress_seconds);
  s.reject_unread();
  require(l.every_steps >= 1, s, "every_steps", "must be >= 1");
  require(l.flush_seconds > 0, s, "flush_seconds", "must be > 0");
  require(l.progress_seconds > 0, s, "progress_seconds", "must be > 0");
  return l;
}

// gns.ema_samples (the default) or gns.ema_beta: one of the two sets the EMA.
void check_gns_ema(const Section& s, GnsSpec& g) {
  if (s.has("ema_beta")) {
    if (s.has("ema_samples"))
      s.fail("ema_samples",
             "set either gns.ema_samples (the EMA's window in samples) or gns.ema_beta (its factor per step), not "
             "both; on the command line, --set gns.ema_samples=null drops the file's one");
    g.ema_samples = 0;
  }
  require(g.ema_beta >= 0 && g.ema_beta < 1, s, "ema_beta", "must be in [0, 1)");
  require(s.has("ema_beta") || (std::isfinite(g.ema_samples) && g.ema_samples > 0), s, "ema_samples",
          "must be a number of samples > 0, e.g. 10000 (or set gns.ema_beta for an EMA counted in steps)");
}

GnsSpec parse_gns(const Section& s) {
  GnsSpec g;
  g.ema_samples = s.number("ema_samples", g.ema_samples);
  g.ema_beta = s.number("ema_beta", g.ema_beta);
  g.microbatches = s.integer("microbatches", 1);
  g.per_layer = s.boolean("per_layer", false);
  s.reject_unread();
  check_gns_ema(s, g);
  require(g.microbatches >= 1 && g.microbatches <= 1024, s, "microbatches",
          "must be between 1 (no splitting) and 1024; 2 or more gives one-rank runs a noise estimate");
  return g;
}

CheckpointSpec parse_checkpoint(const Section& s) {
  CheckpointSpec c;
  c.every_steps = s.integer("every_steps", c.every_steps);
  c.every_minutes = s.number("every_minutes", c.every_minutes);
  s.reject_unread();
  require(c.every_steps >= 0, s, "every_steps", "must be >= 0 (0: not by steps)");
  require(c.every_minutes >= 0, s, "every_minutes", "must be >= 0 (0: not by time)");
  return c;
}

// value and stop are read only with a metric other than none, so a disabled
// target ignores them.
TargetSpec parse_target(const Section& s) {
  TargetSpec t;
  const bool has_metric = s.has("metric"), has_value = s.has("value"), has_stop = s.has("stop");
  s.reject_unread();
  if (!has_metric && !has_value && !has_stop) return t;
  t.metric = s.choice("metric", "val_error", {"none", "val_error", "val_acc", "val_loss", "train_loss"});
  if (t.metric == "none") return t;
  if (!has_value) s.fail("value", "required with a target metric, e.g. value: 0.15");
  t.value = s.number("value", 0);
  if (t.metric == "val_error" || t.metric == "val_acc")
    require(t.value > 0 && t.value < 1, s, "value", "an error or accuracy target must be in (0, 1)");
  else
    require(t.value > 0, s, "value", "a loss target must be > 0");
  t.stop = s.boolean("stop", true);
  return t;
}

RunSpec parse_run(const Section& s, double default_lr) {
  RunSpec r;
  r.name = s.str("name", "");  // an absent name is generated below, from the checked batch, lr and seed
  r.batch_per_rank = s.int_list("batch");
  r.lr = s.number("lr", default_lr);
  const int64_t seed = s.integer("seed", 1);
  const int64_t ranks = s.integer("ranks", static_cast<int64_t>(r.batch_per_rank.size()));
  s.reject_unread();
  if (r.batch_per_rank.empty()) s.fail("batch", "required: the per-rank batch sizes, e.g. [16, 48]");
  for (auto b : r.batch_per_rank) require(b > 0, s, "batch", "per-rank batch sizes must be positive");
  require(ranks == r.ranks(), s, "ranks", "must equal the length of batch (" + std::to_string(r.ranks()) + ")");
  require(r.lr > 0, s, "lr", "must be > 0");
  require(seed >= 0, s, "seed", "must be >= 0");
  r.seed = static_cast<uint64_t>(seed);
  if (!s.has("name")) r.name = sweep_run_name(r.global_batch(), r.lr, r.seed);
  require(!r.name.empty() && r.name.find('/') == std::string::npos, s, "name",
          "must be a non-empty file-name-safe string");
  return r;
}

// node: top.raw("runs"), looked up with the other top-level keys.
std::vector<RunSpec> parse_runs(const Section& top, const YAML::Node& node, double default_lr) {
  std::vector<RunSpec> runs;
  if (!node.IsDefined() || node.IsNull()) return runs;
  if (!node.IsSequence())
    throw ConfigError(top.file(), "runs", "expected a list of runs, each {name, batch: [per-rank batches], lr, seed}");
  for (size_t i = 0; i < node.size(); ++i) runs.push_back(parse_run(top.item("runs", i), default_lr));
  return runs;
}

// sweep.split: 'equal' (an empty list) or one positive weight per rank.
std::vector<double> parse_split(const Section& s, const YAML::Node& split, int ranks) {
  if (!split.IsDefined() || split.IsNull() || (split.IsScalar() && split.Scalar() == "equal")) return {};
  if (!split.IsSequence()) s.fail("split", "expected 'equal' or a list of per-rank weights, e.g. [1, 3]");
  std::vector<double> weights = s.number_list("split");
  if (static_cast<int>(weights.size()) != ranks)
    s.fail("split", "has " + std::to_string(weights.size()) + " weights but ranks is " + std::to_string(ranks) +
                        "; give one weight per rank, e.g. [1, 3]");
  for (double w : weights) require(w > 0, s, "split", "weights must be > 0");
  return weights;
}

std::vector<RunSpec> parse_sweep(const Section& s, double default_lr) {
  SweepSpec sw;
  sw.global_batch = s.int_list("global_batch");
  sw.lr = s.number_list("lr");
  const std::vector<int64_t> seeds = s.int_list("seed");
  const int64_t ranks = s.integer("ranks", 1);
  const YAML::Node split = s.raw("split");
  s.reject_unread();
  if (sw.global_batch.empty()) s.fail("global_batch", "required: a list of global batch sizes, e.g. [32, 128, 512]");
  for (auto b : sw.global_batch) require(b > 0, s, "global_batch", "batch sizes must be positive");
  if (sw.lr.empty()) sw.lr = {default_lr};
  for (auto lr : sw.lr) require(lr > 0, s, "lr", "learning rates must be > 0");
  for (auto v : seeds) {
    require(v >= 0, s, "seed", "seeds must be >= 0");
    sw.seed.push_back(static_cast<uint64_t>(v));
  }
  if (sw.seed.empty()) sw.seed = {1};
  require(ranks >= 1 && ranks <= 4096, s, "ranks", "must be between 1 and 4096 (ranks per run)");
  sw.ranks = static_cast<int>(ranks);
  sw.weights = parse_split(s, split, sw.ranks);
  try {
    return expand_sweep(sw);
  } catch (const std::invalid_argument& e) {
    s.fail("global_batch", std::string(e.what()) + "; use a larger global batch or fewer ranks");
  }
}

// Checks across runs, once all are known: unique names, micro-batches that
// fit, batches the training set can serve. The first explicit_runs came from
// runs:, the rest from sweep:.
void check_runs(const Study& st, size_t explicit_runs) {
  std::set<std::string> names;
  for (size_t i = 0; i < st.runs.size(); ++i) {
    const auto& r = st.runs[i];
    if (!names.insert(r.name).second)
      throw ConfigError(st.file, "runs", "two runs are named '" + r.name + "'; run names must be unique");
    for (auto b : r.batch_per_rank)
      if (b < st.gns.microbatches)
        throw ConfigError(st.file, "gns.microbatches",
                          std::to_string(st.gns.microbatches) + " micro-batches do not fit run '" + r.name +
                              "', whose smallest per-rank batch is " + std::to_string(b) +
                              "; use at most that many, or larger batches");
    try {
      run_budget(st, r);  // throws for a batch larger than the training set
    } catch (const ConfigError& e) {
      // Name the key the researcher wrote, not the run's generated name.
      throw ConfigError(st.file, i < explicit_runs ? "runs[" + std::to_string(i) + "].batch" : "sweep.global_batch",
                        e.reason());
    }
  }
}

// The top level's own values, checked once every top-level key is looked up.
void check_top(const Section& top, Study& st, int64_t seed) {
  if (st.name.empty() || st.name.find('/') != std::string::npos)
    top.fail("study", "required: a file-name-safe study name, e.g. 'study: quickstart'");
  if (seed < 0) top.fail("seed", "must be >= 0");
  st.seed = static_cast<uint64_t>(seed);
  if (!(st.comm_timeout_s > 0))
    top.fail("comm_timeout_s", "must be > 0 seconds (how long a collective may wait for a peer before the job aborts)");
}

Study parse_top(const Section& top) {
  Study st;
  st.file = top.file();
  st.name = top.str("study", "");
  st.output = top.str("output", "results/" + st.name);
  const int64_t seed = top.integer("seed", 0);
  st.device = top.choice("device", "auto", {"auto", "cpu", "cuda"});
  st.comm = top.choice("comm", "auto", {"auto", "mpi", "nccl"});
  st.comm_timeout_s = top.number("comm_timeout_s", 300);
  // Taking a section looks its key up; each is parsed after the top level is checked.
  const Section data = top.sub("data"), model = top.sub("model"), optimizer = top.sub("optimizer"),
                budget = top.sub("budget"), eval = top.sub("eval"), log = top.sub("log"), gns = top.sub("gns"),
                target = top.sub("target"), checkpoint = top.sub("checkpoint"), gpu = top.sub("gpu");
  const YAML::Node runs = top.raw("runs");
  const Section sweep = top.sub("sweep");
  top.reject_unread();
  check_top(top, st, seed);
  st.data = parse_data(data);
  st.model = parse_model(model);
  st.optimizer = parse_optimizer(optimizer);
  if (!top.has("budget")) throw ConfigError(st.file, "budget", "required: budget: {epochs: E} or budget: {steps: S}");
  st.budget = parse_budget(budget);
  st.eval = parse_eval(eval);
  st.log = parse_log(log);
  st.gns = parse_gns(gns);
  st.target = parse_target(target);
  if (st.model.loss == "mse" && (st.target.metric == "val_acc" || st.target.metric == "val_error"))
    throw ConfigError(st.file, "target.metric",
                      "'" + st.target.metric +
                          "' needs an accuracy, which model.loss mse has not; use val_loss or "
                          "train_loss");
  st.checkpoint = parse_checkpoint(checkpoint);
  st.gpu = parse_gpu(gpu);
  st.runs = parse_runs(top, runs, st.optimizer.lr);
  std::vector<RunSpec> swept;
  if (top.has("sweep")) swept = parse_sweep(sweep, st.optimizer.lr);
  st.runs.insert(st.runs.end(), swept.begin(), swept.end());
  if (st.runs.empty())
    throw ConfigError(st.file, "runs", "the study has no runs: give 'runs:' (a list) or 'sweep:' with global_batch");
  check_runs(st, st.runs.size() - swept.size());
  return st;
}

// The study text with --set applied; `overridden` gets the dotted keys set.
YAML::Node load_tree(const std::string& text, const std::string& file, const std::vector<std::string>& overrides,
                     std::set<std::string>& overridden) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(file, "", "not valid YAML: " + std::string(e.what()));
  }
  if (root.IsNull() || !root.IsDefined()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) throw ConfigError(file, "", "expected a mapping at the top level (study: ..., data: ..., ...)");
  reject_duplicate_keys(root, file, "");
  for (const auto& o : overrides) {
    apply_override(root, o, file);
    overridden.insert(o.substr(0, o.find('=')));
  }
  return root;
}

// ---------------------------------------------------------------- resolved YAML
// What is written is what a run used: effective sizes, and of two alternative
// keys only the one in effect. The bytes are stored in run files and compared
// across jobs (tests/unit/test_config.cpp pins them).

// One "key: value" entry of the mapping being written.
template <typename T>
void entry(YAML::Emitter& out, const char* key, const T& value) {
  out << YAML::Key << key << YAML::Value << value;
}

void begin_map(YAML::Emitter& out, const char* key) { out << YAML::Key << key << YAML::Value << YAML::BeginMap; }

void flow_ints(YAML::Emitter& out, const char* key, const std::vector<int64_t>& v) {
  out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (auto x : v) out << x;
  out << YAML::EndSeq;
}

void emit_data(YAML::Emitter& out, const DataSpec& d) {
  begin_map(out, "data");
  entry(out, "name", d.name);
  if (d.name == "hdf5") {
    entry(out, "path", d.path);
    entry(out, "train_x", d.train_x);
    entry(out, "train_y", d.train_y);
    entry(out, "test_x", d.test_x);
    entry(out, "test_y", d.test_y);
    if (!std::isnan(d.mean)) entry(out, "mean", d.mean);
    if (!std::isnan(d.stdev)) entry(out, "stdev", d.stdev);
  } else {
    entry(out, "root", d.root);
  }
  entry(out, "train_size", d.effective_train_size());
  entry(out, "test_size", d.effective_test_size());
  if (d.name == "synthetic") {
    entry(out, "synthetic_train", d.synthetic_train);
    entry(out, "synthetic_test", d.synthetic_test);
    entry(out, "synthetic_noise", d.synthetic_noise);
  }
  out << YAML::EndMap;
}

void emit_model(YAML::Emitter& out, const ModelSpec& m) {
  begin_map(out, "model");
  entry(out, "name", m.name);
  if (m.name == "mlp") flow_ints(out, "hidden", m.hidden);
  if (m.name == "torchscript") {
    entry(out, "path", m.path);
    entry(out, "init", m.init);
  }
  entry(out, "loss", m.loss);
  out << YAML::EndMap;
}

void emit_optimizer(YAML::Emitter& out, const OptimizerSpec& o) {
  begin_map(out, "optimizer");
  entry(out, "name", o.name);
  entry(out, "lr", o.lr);
  entry(out, "ref_batch", o.ref_batch);
  entry(out, "scaling", o.scaling);
  if (o.name == "adam") entry(out, "beta2_scaling", o.beta2_scaling);
  entry(out, "schedule", o.schedule);
  if (o.warmup_steps > 0)
    entry(out, "warmup_steps", o.warmup_steps);
  else
    entry(out, "warmup_epochs", o.warmup_epochs);
  if (o.name == "sgd") {
    entry(out, "momentum", o.momentum);
    entry(out, "nesterov", o.nesterov);
  } else {
    out << YAML::Key << "betas" << YAML::Value << YAML::Flow << YAML::BeginSeq << o.beta1 << o.beta2 << YAML::EndSeq;
    entry(out, "eps", o.eps);
  }
  entry(out, "weight_decay", o.weight_decay);
  out << YAML::EndMap;
}

// budget and eval: of each pair of alternatives, the one in effect.
void emit_budget_eval(YAML::Emitter& out, const BudgetSpec& b, const EvalSpec& e) {
  begin_map(out, "budget");
  if (b.steps > 0)
    entry(out, "steps", b.steps);
  else
    entry(out, "epochs", b.epochs);
  out << YAML::EndMap;
  begin_map(out, "eval");
  if (e.every_steps > 0)
    entry(out, "every_steps", e.every_steps);
  else
    entry(out, "every_epochs", e.every_epochs);
  entry(out, "train_subset", e.train_subset);
  entry(out, "batch", e.batch);
  if (e.sharpness.enabled()) {  // written only when on, like target
    begin_map(out, "sharpness");
    entry(out, "every", e.sharpness.every);
    entry(out, "iterations", e.sharpness.iterations);
    entry(out, "samples", e.sharpness.samples);
    entry(out, "tolerance", e.sharpness.tolerance);
    entry(out, "at_start", e.sharpness.at_start);
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
}

// log, gns and checkpoint: how a run is watched and saved.
void emit_monitoring(YAML::Emitter& out, const Study& st) {
  begin_map(out, "log");
  entry(out, "every_steps", st.log.every_steps);
  entry(out, "flush_seconds", st.log.flush_seconds);
  entry(out, "progress_seconds", st.log.progress_seconds);
  out << YAML::EndMap;
  begin_map(out, "gns");
  if (st.gns.ema_samples > 0)
    entry(out, "ema_samples", st.gns.ema_samples);
  else
    entry(out, "ema_beta", st.gns.ema_beta);
  entry(out, "microbatches", st.gns.microbatches);
  entry(out, "per_layer", st.gns.per_layer);
  out << YAML::EndMap;
  begin_map(out, "checkpoint");
  entry(out, "every_steps", st.checkpoint.every_steps);
  entry(out, "every_minutes", st.checkpoint.every_minutes);
  out << YAML::EndMap;
  begin_map(out, "gpu");
  entry(out, "graphs", st.gpu.graphs);
  out << YAML::EndMap;
}

// Written only when enabled: a study without a target has no target section.
void emit_target(YAML::Emitter& out, const TargetSpec& t) {
  if (!t.enabled()) return;
  begin_map(out, "target");
  entry(out, "metric", t.metric);
  entry(out, "value", t.value);
  entry(out, "stop", t.stop);
  out << YAML::EndMap;
}

// Explicit and swept runs alike, one flow mapping each: the sweep is expanded.
void emit_runs(YAML::Emitter& out, const std::vector<RunSpec>& runs) {
  out << YAML::Key << "runs" << YAML::Value << YAML::BeginSeq;
  for (const auto& r : runs) {
    out << YAML::Flow << YAML::BeginMap;
    entry(out, "name", r.name);
    flow_ints(out, "batch", r.batch_per_rank);
    entry(out, "lr", r.lr);
    entry(out, "seed", r.seed);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

std::string emit_study(const Study& st) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  entry(out, "study", st.name);
  entry(out, "output", st.output);
  entry(out, "seed", st.seed);
  entry(out, "device", st.device);
  entry(out, "comm", st.comm);
  entry(out, "comm_timeout_s", st.comm_timeout_s);
  emit_data(out, st.data);
  emit_model(out, st.model);
  emit_optimizer(out, st.optimizer);
  emit_budget_eval(out, st.budget, st.eval);
  emit_monitoring(out, st);
  emit_target(out, st.target);
  emit_runs(out, st.runs);
  out << YAML::EndMap;
  return out.c_str();
}

// A study with every section, for study_keys(): parsing it looks up every key.
const char* const kEverySection = "study: keys\nbudget: {steps: 1}\nruns: [{batch: [1]}]\nsweep: {global_batch: [2]}\n";

}  // namespace

int64_t DataSpec::full_train_size() const {
  if (name == "synthetic") return synthetic_train;
  if (name == "hdf5") return hdf5_train_rows;
  return 60000;
}

int64_t DataSpec::full_test_size() const {
  if (name == "synthetic") return synthetic_test;
  if (name == "hdf5") return hdf5_test_rows;
  return 10000;
}
int64_t DataSpec::effective_train_size() const { return train_size > 0 ? train_size : full_train_size(); }
int64_t DataSpec::effective_test_size() const { return test_size > 0 ? test_size : full_test_size(); }

bool TargetSpec::reached(double val_loss, double val_acc, double train_loss) const {
  if (metric == "val_error") return 1.0 - val_acc <= value;
  if (metric == "val_acc") return val_acc >= value;
  if (metric == "val_loss") return val_loss <= value;
  if (metric == "train_loss") return train_loss <= value;
  return false;
}

int64_t RunSpec::global_batch() const {
  int64_t b = 0;
  for (auto x : batch_per_rank) b += x;
  return b;
}

double GnsSpec::step_beta(int64_t global_batch) const {
  return ema_samples > 0 ? std::exp(-static_cast<double>(global_batch) / ema_samples) : ema_beta;
}

// Marek et al. 2025: beta2 ** (B / ref_batch) keeps the half-life of Adam's
// second-moment average constant in samples.
double adam_beta2(const OptimizerSpec& o, int64_t global_batch) {
  if (o.beta2_scaling != "half_life") return o.beta2;
  return std::pow(o.beta2, static_cast<double>(global_batch) / static_cast<double>(o.ref_batch));
}

RunBudget run_budget(const Study& st, const RunSpec& run) {
  RunBudget rb;
  const int64_t B = run.global_batch();
  rb.train_size = st.data.effective_train_size();
  rb.steps_per_epoch = rb.train_size / B;
  if (rb.steps_per_epoch < 1)
    throw ConfigError(st.file, "runs." + run.name,
                      "global batch " + std::to_string(B) + " exceeds the training set (data.train_size = " +
                          std::to_string(rb.train_size) + "); use a batch <= " + std::to_string(rb.train_size));
  rb.total_steps = st.budget.steps > 0
                       ? st.budget.steps
                       : std::max<int64_t>(1, static_cast<int64_t>(std::floor(st.budget.epochs * rb.steps_per_epoch)));
  if (st.eval.every_steps > 0)
    rb.eval_every_steps = st.eval.every_steps;
  else if (st.eval.every_epochs > 0)
    rb.eval_every_steps = std::max<int64_t>(1, std::llround(st.eval.every_epochs * rb.steps_per_epoch));
  rb.warmup_steps = st.optimizer.warmup_steps > 0 ? st.optimizer.warmup_steps
                                                  : std::llround(st.optimizer.warmup_epochs * rb.steps_per_epoch);
  const double ratio = static_cast<double>(B) / st.optimizer.ref_batch;
  rb.peak_lr = run.lr * (st.optimizer.scaling == "linear" ? ratio
                         : st.optimizer.scaling == "sqrt" ? std::sqrt(ratio)
                                                          : 1.0);
  rb.beta2 = adam_beta2(st.optimizer, B);
  return rb;
}

Study parse_study(const std::string& text, const std::string& file, const std::vector<std::string>& overrides) {
  auto overridden = std::make_shared<std::set<std::string>>();
  const YAML::Node root = load_tree(text, file, overrides, *overridden);
  Study st = parse_top(Section(root, "", file, overridden));
  st.resolved_yaml = emit_study(st);
  return st;
}

std::vector<std::string> study_keys() {
  const Section top(YAML::Load(kEverySection), "", "study_keys");
  parse_top(top);
  std::vector<std::string> keys;
  for (std::string k : top.keys_read()) {
    const size_t open = k.find('[');  // runs[0].batch -> runs[].batch
    if (open != std::string::npos) k.erase(open + 1, k.find(']') - open - 1);
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  return keys;
}

Study load_study(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path, "", "cannot read the study file (does it exist?)");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_study(ss.str(), path, overrides);
}

std::string run_yaml(const Study& st, const RunSpec& r) {
  RunBudget rb = run_budget(st, r);
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << r.name;
  out << YAML::Key << "batch" << YAML::Value << YAML::Flow << r.batch_per_rank;
  out << YAML::Key << "global_batch" << YAML::Value << r.global_batch();
  out << YAML::Key << "lr" << YAML::Value << r.lr << YAML::Key << "peak_lr" << YAML::Value << rb.peak_lr;
  if (st.optimizer.name == "adam") out << YAML::Key << "beta2" << YAML::Value << rb.beta2;
  out << YAML::Key << "seed" << YAML::Value << r.seed;
  out << YAML::Key << "steps_per_epoch" << YAML::Value << rb.steps_per_epoch;
  out << YAML::Key << "total_steps" << YAML::Value << rb.total_steps << YAML::EndMap;
  return out.c_str();
}

}  // namespace bs
