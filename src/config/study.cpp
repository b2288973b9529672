#include "config/study.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "config/sweep.h"
#include "config/yaml_tree.h"
#include "util/errors.h"

namespace bs {
namespace {

const std::vector<std::string> kDatasets{"fashion-mnist", "mnist", "synthetic"};
const std::vector<std::string> kDebianFashionRoot{"/usr/share/datasets/fashion-mnist"};

void require(bool ok, const Section& s, const std::string& key, const std::string& what) {
  if (!ok) s.fail(key, what);
}

DataSpec parse_data(const Section& s) {
  s.reject_unknown({"name", "root", "train_size", "test_size", "synthetic_train", "synthetic_test",
                    "synthetic_noise"});
  DataSpec d;
  d.name = s.choice("name", d.name, kDatasets);
  d.root = s.str("root", d.name == "fashion-mnist" ? kDebianFashionRoot[0] : "");
  if (d.name == "mnist" && d.root.empty())
    s.fail("root", "required for mnist: a folder with train-images-idx3-ubyte[.gz] and the other 3 IDX files");
  d.synthetic_train = s.integer("synthetic_train", d.synthetic_train);
  d.synthetic_test = s.integer("synthetic_test", d.synthetic_test);
  d.synthetic_noise = s.number("synthetic_noise", d.synthetic_noise);
  require(d.synthetic_train >= 2, s, "synthetic_train", "must be >= 2");
  require(d.synthetic_test >= 1, s, "synthetic_test", "must be >= 1");
  require(d.synthetic_noise > 0, s, "synthetic_noise", "must be > 0");
  d.train_size = s.integer("train_size", 0);
  d.test_size = s.integer("test_size", 0);
  require(d.train_size >= 0 && d.train_size <= d.full_train_size(), s, "train_size",
          "must be between 1 and " + std::to_string(d.full_train_size()) + " (0 or absent: all)");
  require(d.test_size >= 0 && d.test_size <= d.full_test_size(), s, "test_size",
          "must be between 1 and " + std::to_string(d.full_test_size()) + " (0 or absent: all)");
  return d;
}

ModelSpec parse_model(const Section& s) {
  s.reject_unknown({"name", "hidden"});
  ModelSpec m;
  m.name = s.choice("name", m.name, {"mlp", "cnn"});
  if (s.has("hidden")) {
    if (m.name != "mlp") s.fail("hidden", "only the mlp model takes hidden sizes (the cnn is fixed)");
    m.hidden = s.int_list("hidden");
    for (auto h : m.hidden) require(h > 0, s, "hidden", "hidden sizes must be positive integers, e.g. [512, 256]");
  }
  return m;
}

OptimizerSpec parse_optimizer(const Section& s) {
  s.reject_unknown({"name", "lr", "ref_batch", "scaling", "schedule", "warmup_epochs", "warmup_steps",
                    "momentum", "nesterov", "weight_decay", "betas", "eps"});
  OptimizerSpec o;
  o.name = s.choice("name", o.name, {"sgd", "adam"});
  o.lr = s.number("lr", o.lr);
  require(o.lr > 0, s, "lr", "must be > 0");
  o.ref_batch = s.integer("ref_batch", o.ref_batch);
  require(o.ref_batch > 0, s, "ref_batch", "must be a positive batch size");
  o.scaling = s.choice("scaling", o.scaling, {"none", "linear", "sqrt"});
  o.schedule = s.choice("schedule", o.schedule, {"constant", "cosine"});
  o.warmup_epochs = s.number("warmup_epochs", 0);
  o.warmup_steps = s.integer("warmup_steps", 0);
  require(o.warmup_epochs >= 0, s, "warmup_epochs", "must be >= 0");
  require(o.warmup_steps >= 0, s, "warmup_steps", "must be >= 0");
  if (o.warmup_epochs > 0 && o.warmup_steps > 0)
    s.fail("warmup_steps", "set either warmup_epochs or warmup_steps, not both");
  o.momentum = s.number("momentum", o.name == "sgd" ? o.momentum : 0.0);
  if (o.name == "adam" && s.has("momentum")) s.fail("momentum", "adam takes betas: [beta1, beta2], not momentum");
  require(o.momentum >= 0 && o.momentum < 1, s, "momentum", "must be in [0, 1)");
  o.nesterov = s.boolean("nesterov", false);
  if (o.nesterov && o.momentum <= 0) s.fail("nesterov", "nesterov needs momentum > 0");
  if (o.nesterov && o.name != "sgd") s.fail("nesterov", "only sgd takes nesterov");
  o.weight_decay = s.number("weight_decay", 0);
  require(o.weight_decay >= 0, s, "weight_decay", "must be >= 0");
  if (s.has("betas")) {
    if (o.name != "adam") s.fail("betas", "only adam takes betas");
    auto b = s.number_list("betas");
    require(b.size() == 2 && b[0] >= 0 && b[0] < 1 && b[1] >= 0 && b[1] < 1, s, "betas",
            "expected [beta1, beta2], each in [0, 1)");
    o.beta1 = b[0];
    o.beta2 = b[1];
  }
  o.eps = s.number("eps", o.eps);
  require(o.eps > 0, s, "eps", "must be > 0");
  return o;
}

BudgetSpec parse_budget(const Section& s) {
  s.reject_unknown({"epochs", "steps"});
  BudgetSpec b;
  b.epochs = s.number("epochs", 0);
  b.steps = s.integer("steps", 0);
  require(b.epochs >= 0, s, "epochs", "must be > 0");
  require(b.steps >= 0, s, "steps", "must be > 0");
  if ((b.epochs > 0) == (b.steps > 0))
    throw ConfigError(s.file(), "budget", "set exactly one of budget.epochs (> 0) or budget.steps (> 0); to switch on the "
                      "command line, replace the mapping: --set 'budget={steps: 50}'");
  return b;
}

EvalSpec parse_eval(const Section& s) {
  s.reject_unknown({"every_epochs", "every_steps", "train_subset", "batch"});
  EvalSpec e;
  e.every_epochs = s.number("every_epochs", 0);
  e.every_steps = s.integer("every_steps", 0);
  require(e.every_epochs >= 0, s, "every_epochs", "must be >= 0 (0: only at start and end)");
  require(e.every_steps >= 0, s, "every_steps", "must be >= 0 (0: only at start and end)");
  if (e.every_epochs > 0 && e.every_steps > 0)
    s.fail("every_steps", "set either eval.every_epochs or eval.every_steps, not both");
  e.train_subset = s.integer("train_subset", e.train_subset);
  require(e.train_subset >= 0, s, "train_subset", "must be >= 0 (0: no training-set evaluation)");
  e.batch = s.integer("batch", e.batch);
  require(e.batch > 0, s, "batch", "must be a positive batch size");
  return e;
}

LogSpec parse_log(const Section& s) {
  s.reject_unknown({"every_steps", "flush_seconds", "progress_seconds"});
  LogSpec l;
  l.every_steps = s.integer("every_steps", l.every_steps);
  require(l.every_steps >= 1, s, "every_steps", "must be >= 1");
  l.flush_seconds = s.number("flush_seconds", l.flush_seconds);
  require(l.flush_seconds > 0, s, "flush_seconds", "must be > 0");
  l.progress_seconds = s.number("progress_seconds", l.progress_seconds);
  require(l.progress_seconds > 0, s, "progress_seconds", "must be > 0");
  return l;
}

GnsSpec parse_gns(const Section& s) {
  s.reject_unknown({"ema_beta", "microbatches", "per_layer"});
  GnsSpec g;
  g.ema_beta = s.number("ema_beta", g.ema_beta);
  require(g.ema_beta >= 0 && g.ema_beta < 1, s, "ema_beta", "must be in [0, 1)");
  g.microbatches = s.integer("microbatches", 1);
  require(g.microbatches >= 1 && g.microbatches <= 1024, s, "microbatches",
          "must be between 1 (no splitting) and 1024; 2 or more gives one-rank runs a noise estimate");
  g.per_layer = s.boolean("per_layer", false);
  return g;
}

CheckpointSpec parse_checkpoint(const Section& s) {
  s.reject_unknown({"every_steps", "every_minutes"});
  CheckpointSpec c;
  c.every_steps = s.integer("every_steps", c.every_steps);
  require(c.every_steps >= 0, s, "every_steps", "must be >= 0 (0: not by steps)");
  c.every_minutes = s.number("every_minutes", c.every_minutes);
  require(c.every_minutes >= 0, s, "every_minutes", "must be >= 0 (0: not by time)");
  return c;
}

TargetSpec parse_target(const Section& s) {
  s.reject_unknown({"metric", "value", "stop"});
  TargetSpec t;
  if (!s.has("metric") && !s.has("value") && !s.has("stop")) return t;
  t.metric = s.choice("metric", "val_error", {"none", "val_error", "val_acc", "val_loss", "train_loss"});
  if (t.metric == "none") return t;
  if (!s.has("value")) s.fail("value", "required with a target metric, e.g. value: 0.15");
  t.value = s.number("value", 0);
  if (t.metric == "val_error" || t.metric == "val_acc")
    require(t.value > 0 && t.value < 1, s, "value", "an error or accuracy target must be in (0, 1)");
  else
    require(t.value > 0, s, "value", "a loss target must be > 0");
  t.stop = s.boolean("stop", true);
  return t;
}

std::vector<RunSpec> parse_runs(const YAML::Node& node, const std::string& file, double default_lr) {
  std::vector<RunSpec> runs;
  if (!node.IsDefined() || node.IsNull()) return runs;
  if (!node.IsSequence())
    throw ConfigError(file, "runs", "expected a list of runs, each {name, batch: [per-rank batches], lr, seed}");
  for (size_t i = 0; i < node.size(); ++i) {
    Section s(node[i], "runs[" + std::to_string(i) + "]", file);
    s.reject_unknown({"name", "batch", "lr", "seed", "ranks"});
    RunSpec r;
    r.batch_per_rank = s.int_list("batch");
    if (r.batch_per_rank.empty()) s.fail("batch", "required: the per-rank batch sizes, e.g. [16, 48]");
    for (auto b : r.batch_per_rank) require(b > 0, s, "batch", "per-rank batch sizes must be positive");
    if (s.has("ranks") && s.integer("ranks", 0) != r.ranks())
      s.fail("ranks", "must equal the length of batch (" + std::to_string(r.ranks()) + ")");
    r.lr = s.number("lr", default_lr);
    require(r.lr > 0, s, "lr", "must be > 0");
    int64_t seed = s.integer("seed", 1);
    require(seed >= 0, s, "seed", "must be >= 0");
    r.seed = static_cast<uint64_t>(seed);
    r.name = s.str("name", sweep_run_name(r.global_batch(), r.lr, r.seed));
    require(!r.name.empty() && r.name.find('/') == std::string::npos, s, "name",
            "must be a non-empty file-name-safe string");
    runs.push_back(r);
  }
  return runs;
}

std::vector<RunSpec> parse_sweep(const Section& s, double default_lr) {
  s.reject_unknown({"global_batch", "lr", "seed", "ranks", "split"});
  SweepSpec sw;
  sw.global_batch = s.int_list("global_batch");
  if (sw.global_batch.empty()) s.fail("global_batch", "required: a list of global batch sizes, e.g. [32, 128, 512]");
  for (auto b : sw.global_batch) require(b > 0, s, "global_batch", "batch sizes must be positive");
  sw.lr = s.number_list("lr");
  if (sw.lr.empty()) sw.lr = {default_lr};
  for (auto lr : sw.lr) require(lr > 0, s, "lr", "learning rates must be > 0");
  auto seeds = s.int_list("seed");
  if (seeds.empty()) seeds = {1};
  for (auto v : seeds) {
    require(v >= 0, s, "seed", "seeds must be >= 0");
    sw.seed.push_back(static_cast<uint64_t>(v));
  }
  int64_t ranks = s.integer("ranks", 1);
  require(ranks >= 1 && ranks <= 4096, s, "ranks", "must be between 1 and 4096 (ranks per run)");
  sw.ranks = static_cast<int>(ranks);
  YAML::Node split = s.raw("split");
  if (split.IsDefined() && !split.IsNull()) {
    if (split.IsScalar() && split.Scalar() == "equal") {
    } else if (split.IsSequence()) {
      sw.weights = s.number_list("split");
      if (static_cast<int>(sw.weights.size()) != sw.ranks)
        s.fail("split", "has " + std::to_string(sw.weights.size()) + " weights but ranks is " +
                            std::to_string(sw.ranks) + "; give one weight per rank, e.g. [1, 3]");
      for (double w : sw.weights) require(w > 0, s, "split", "weights must be > 0");
    } else {
      s.fail("split", "expected 'equal' or a list of per-rank weights, e.g. [1, 3]");
    }
  }
  try {
    return expand_sweep(sw);
  } catch (const std::invalid_argument& e) {
    s.fail("global_batch", std::string(e.what()) + "; use a larger global batch or fewer ranks");
  }
}

void emit_study(YAML::Emitter& out, const Study& st) {
  auto flow_ints = [&](const std::vector<int64_t>& v) {
    out << YAML::Flow << YAML::BeginSeq;
    for (auto x : v) out << x;
    out << YAML::EndSeq;
  };
  out << YAML::BeginMap;
  out << YAML::Key << "study" << YAML::Value << st.name;
  out << YAML::Key << "output" << YAML::Value << st.output;
  out << YAML::Key << "seed" << YAML::Value << st.seed;
  out << YAML::Key << "device" << YAML::Value << st.device;
  out << YAML::Key << "comm" << YAML::Value << st.comm;
  out << YAML::Key << "comm_timeout_s" << YAML::Value << st.comm_timeout_s;
  out << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << st.data.name;
  out << YAML::Key << "root" << YAML::Value << st.data.root;
  out << YAML::Key << "train_size" << YAML::Value << st.data.effective_train_size();
  out << YAML::Key << "test_size" << YAML::Value << st.data.effective_test_size();
  if (st.data.name == "synthetic") {
    out << YAML::Key << "synthetic_train" << YAML::Value << st.data.synthetic_train;
    out << YAML::Key << "synthetic_test" << YAML::Value << st.data.synthetic_test;
    out << YAML::Key << "synthetic_noise" << YAML::Value << st.data.synthetic_noise;
  }
  out << YAML::EndMap;
  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << st.model.name;
  if (st.model.name == "mlp") {
    out << YAML::Key << "hidden" << YAML::Value;
    flow_ints(st.model.hidden);
  }
  out << YAML::EndMap;
  const auto& o = st.optimizer;
  out << YAML::Key << "optimizer" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << o.name << YAML::Key << "lr" << YAML::Value << o.lr;
  out << YAML::Key << "ref_batch" << YAML::Value << o.ref_batch;
  out << YAML::Key << "scaling" << YAML::Value << o.scaling << YAML::Key << "schedule" << YAML::Value
      << o.schedule;
  if (o.warmup_steps > 0) out << YAML::Key << "warmup_steps" << YAML::Value << o.warmup_steps;
  else out << YAML::Key << "warmup_epochs" << YAML::Value << o.warmup_epochs;
  if (o.name == "sgd") {
    out << YAML::Key << "momentum" << YAML::Value << o.momentum;
    out << YAML::Key << "nesterov" << YAML::Value << o.nesterov;
  } else {
    out << YAML::Key << "betas" << YAML::Value << YAML::Flow << YAML::BeginSeq << o.beta1 << o.beta2
        << YAML::EndSeq;
    out << YAML::Key << "eps" << YAML::Value << o.eps;
  }
  out << YAML::Key << "weight_decay" << YAML::Value << o.weight_decay;
  out << YAML::EndMap;
  out << YAML::Key << "budget" << YAML::Value << YAML::BeginMap;
  if (st.budget.steps > 0) out << YAML::Key << "steps" << YAML::Value << st.budget.steps;
  else out << YAML::Key << "epochs" << YAML::Value << st.budget.epochs;
  out << YAML::EndMap;
  out << YAML::Key << "eval" << YAML::Value << YAML::BeginMap;
  if (st.eval.every_steps > 0) out << YAML::Key << "every_steps" << YAML::Value << st.eval.every_steps;
  else out << YAML::Key << "every_epochs" << YAML::Value << st.eval.every_epochs;
  out << YAML::Key << "train_subset" << YAML::Value << st.eval.train_subset;
  out << YAML::Key << "batch" << YAML::Value << st.eval.batch << YAML::EndMap;
  out << YAML::Key << "log" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "every_steps" << YAML::Value << st.log.every_steps;
  out << YAML::Key << "flush_seconds" << YAML::Value << st.log.flush_seconds;
  out << YAML::Key << "progress_seconds" << YAML::Value << st.log.progress_seconds << YAML::EndMap;
  out << YAML::Key << "gns" << YAML::Value << YAML::BeginMap << YAML::Key << "ema_beta" << YAML::Value
      << st.gns.ema_beta << YAML::Key << "microbatches" << YAML::Value << st.gns.microbatches << YAML::Key
      << "per_layer" << YAML::Value << st.gns.per_layer << YAML::EndMap;
  out << YAML::Key << "checkpoint" << YAML::Value << YAML::BeginMap << YAML::Key << "every_steps" << YAML::Value
      << st.checkpoint.every_steps << YAML::Key << "every_minutes" << YAML::Value << st.checkpoint.every_minutes
      << YAML::EndMap;
  if (st.target.enabled())
    out << YAML::Key << "target" << YAML::Value << YAML::BeginMap << YAML::Key << "metric" << YAML::Value
        << st.target.metric << YAML::Key << "value" << YAML::Value << st.target.value << YAML::Key << "stop"
        << YAML::Value << st.target.stop << YAML::EndMap;
  out << YAML::Key << "runs" << YAML::Value << YAML::BeginSeq;
  for (const auto& r : st.runs) {
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "name" << YAML::Value << r.name;
    out << YAML::Key << "batch" << YAML::Value;
    flow_ints(r.batch_per_rank);
    out << YAML::Key << "lr" << YAML::Value << r.lr << YAML::Key << "seed" << YAML::Value << r.seed
        << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
}

}  // namespace

int64_t DataSpec::full_train_size() const { return name == "synthetic" ? synthetic_train : 60000; }
int64_t DataSpec::full_test_size() const { return name == "synthetic" ? synthetic_test : 10000; }
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
  if (st.eval.every_steps > 0) rb.eval_every_steps = st.eval.every_steps;
  else if (st.eval.every_epochs > 0)
    rb.eval_every_steps = std::max<int64_t>(1, std::llround(st.eval.every_epochs * rb.steps_per_epoch));
  rb.warmup_steps = st.optimizer.warmup_steps > 0
                        ? st.optimizer.warmup_steps
                        : std::llround(st.optimizer.warmup_epochs * rb.steps_per_epoch);
  const double ratio = static_cast<double>(B) / st.optimizer.ref_batch;
  rb.peak_lr = run.lr * (st.optimizer.scaling == "linear" ? ratio
                         : st.optimizer.scaling == "sqrt" ? std::sqrt(ratio)
                                                          : 1.0);
  return rb;
}

Study parse_study(const std::string& text, const std::string& file,
                  const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(file, "", "not valid YAML: " + std::string(e.what()));
  }
  if (root.IsNull() || !root.IsDefined()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) throw ConfigError(file, "", "expected a mapping at the top level (study: ..., data: ..., ...)");
  auto overridden = std::make_shared<std::set<std::string>>();
  for (const auto& o : overrides) {
    apply_override(root, o, file);
    overridden->insert(o.substr(0, o.find('=')));
  }

  Section top(root, "", file, overridden);
  top.reject_unknown({"study", "output", "seed", "device", "comm", "comm_timeout_s", "data", "model", "optimizer", "budget",
                      "eval", "log", "gns", "target", "checkpoint", "runs", "sweep"});
  Study st;
  st.file = file;
  st.name = top.str("study", "");
  if (st.name.empty() || st.name.find('/') != std::string::npos)
    top.fail("study", "required: a file-name-safe study name, e.g. 'study: quickstart'");
  st.output = top.str("output", "results/" + st.name);
  int64_t seed = top.integer("seed", 0);
  if (seed < 0) top.fail("seed", "must be >= 0");
  st.seed = static_cast<uint64_t>(seed);
  st.device = top.choice("device", "auto", {"auto", "cpu", "cuda"});
  st.comm = top.choice("comm", "auto", {"auto", "mpi", "nccl"});
  st.comm_timeout_s = top.number("comm_timeout_s", 300);
  if (!(st.comm_timeout_s > 0))
    top.fail("comm_timeout_s", "must be > 0 seconds (how long a collective may wait for a peer before the job aborts)");
  st.data = parse_data(top.sub("data"));
  st.model = parse_model(top.sub("model"));
  st.optimizer = parse_optimizer(top.sub("optimizer"));
  if (!top.has("budget")) throw ConfigError(file, "budget", "required: budget: {epochs: E} or budget: {steps: S}");
  st.budget = parse_budget(top.sub("budget"));
  st.eval = parse_eval(top.sub("eval"));
  st.log = parse_log(top.sub("log"));
  st.gns = parse_gns(top.sub("gns"));
  st.target = parse_target(top.sub("target"));
  st.checkpoint = parse_checkpoint(top.sub("checkpoint"));
  st.runs = parse_runs(top.raw("runs"), file, st.optimizer.lr);
  std::vector<RunSpec> swept;
  if (top.has("sweep")) swept = parse_sweep(top.sub("sweep"), st.optimizer.lr);
  st.runs.insert(st.runs.end(), swept.begin(), swept.end());
  if (st.runs.empty())
    throw ConfigError(file, "runs", "the study has no runs: give 'runs:' (a list) or 'sweep:' with global_batch");
  std::set<std::string> names;
  const size_t explicit_runs = st.runs.size() - swept.size();
  for (size_t i = 0; i < st.runs.size(); ++i) {
    const auto& r = st.runs[i];
    if (!names.insert(r.name).second)
      throw ConfigError(file, "runs", "two runs are named '" + r.name + "'; run names must be unique");
    for (auto b : r.batch_per_rank)
      if (b < st.gns.microbatches)
        throw ConfigError(file, "gns.microbatches",
                          std::to_string(st.gns.microbatches) + " micro-batches do not fit run '" + r.name +
                              "', whose smallest per-rank batch is " + std::to_string(b) +
                              "; use at most that many, or larger batches");
    try {
      run_budget(st, r);  // throws for a batch larger than the training set
    } catch (const ConfigError& e) {
      // Name the key the researcher wrote, not the run's generated name.
      const std::string key = i < explicit_runs ? "runs[" + std::to_string(i) + "].batch" : "sweep.global_batch";
      std::string what = e.what();
      throw ConfigError(file, key, what.substr(what.find(": ", what.find("key '")) + 2));
    }
  }
  YAML::Emitter out;
  emit_study(out, st);
  st.resolved_yaml = out.c_str();
  return st;
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
  out << YAML::Key << "seed" << YAML::Value << r.seed;
  out << YAML::Key << "steps_per_epoch" << YAML::Value << rb.steps_per_epoch;
  out << YAML::Key << "total_steps" << YAML::Value << rb.total_steps << YAML::EndMap;
  return out.c_str();
}

}  // namespace bs
