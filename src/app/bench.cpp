#include "app/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "app/device_select.h"
#include "app/replica_group.h"
#include "app/root_console.h"
#include "app/run_actions.h"
#include "app/run_header.h"
#include "app/study_runner.h"
#include "config/study.h"
#include "placement/layout.h"
#include "trace/checkpoint.h"
#include "train/torch_env.h"
#include "train/trainer.h"

namespace bs {
namespace {

using Clock = std::chrono::steady_clock;

// The study the baseline runs: same model, SGD (lr 0.05, momentum 0.9), data
// resident on the device, every rank at the same per-rank batch.
std::string bench_yaml(const BenchOptions& o, int world, int total_steps) {
  std::ostringstream y;
  const std::string out = o.trace_dir.empty() ? "/nonexistent/bench-writes-no-files" : o.trace_dir;
  y << "study: bench\noutput: '" << out << "'\nseed: 1234\n"
    << "device: " << o.device << "\ncomm: " << o.comm << "\ngpu: {graphs: " << o.graphs << "}\n"
    << "data: {name: fashion-mnist" << (o.data_root.empty() ? "" : ", root: '" + o.data_root + "'")
    << ", test_size: 1000}\n";
  if (!o.model_file.empty())
    y << "model: {name: torchscript, path: '" << o.model_file << "'}\n";
  else if (o.model == "mlp")
    y << "model: {name: mlp, hidden: [512, 256]}\n";
  else
    y << "model: {name: " << o.model << "}\n";
  y << "optimizer: {name: sgd, lr: 0.05, ref_batch: " << o.batch << ", scaling: none, momentum: 0.9}\n"
    << "budget: {steps: " << total_steps << "}\n"
    << "eval: {train_subset: 0, batch: 1000}\n"
    << "log: {every_steps: " << o.warmup << "}\n"
    << "runs:\n  - {name: bench, batch: [";
  for (int i = 0; i < world; ++i) y << (i ? ", " : "") << o.batch;
  y << "]}\n";
  return y.str();
}

// The trainer hands over step rows after its read-back from the device, which
// waits for every queued step: the time between the read-back after warm-up
// and the last one covers exactly the timed steps, all finished.
class TimingSink final : public RecordSink {
 public:
  TimingSink(int64_t warmup, int64_t total) : warmup_(warmup), total_(total) {}
  void on_steps(const std::vector<StepRecord>& rows) override {
    const auto now = Clock::now();
    const int64_t last = rows.back().step;
    if (last == warmup_) t0_ = now;
    if (last == total_) t1_ = now;
    final_loss_ = rows.back().loss;
  }
  void on_eval(const EvalRecord&) override {}
  double seconds() const { return std::chrono::duration<double>(t1_ - t0_).count(); }
  double final_loss() const { return final_loss_; }

 private:
  int64_t warmup_, total_;
  Clock::time_point t0_, t1_;
  double final_loss_ = 0;
};

// Rank 0's sink with --trace: the timing, and the run file written by the
// sink `run` uses (appends, timed flushes, progress lines).
class TeeSink final : public RecordSink {
 public:
  TeeSink(RecordSink& a, RecordSink& b) : a_(a), b_(b) {}
  void on_steps(const std::vector<StepRecord>& rows) override {
    b_.on_steps(rows);
    a_.on_steps(rows);
  }
  void on_eval(const EvalRecord& e) override {
    b_.on_eval(e);
    a_.on_eval(e);
  }

 private:
  RecordSink &a_, &b_;
};

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// Trains the bench run; with a trace folder, rank 0 also writes its run file.
RunResult train_timed(const Study& st, const Layout& layout, const DevicePlan& devices, const MpiEnv& env,
                      ReplicaGroup& group, TimingSink& timing, const std::string& trace_dir) {
  const RunSpec& run = st.runs[0];
  if (trace_dir.empty()) return group.trainer.run(run, env.rank() == 0 ? &timing : nullptr);
  const GroupPlacement placement = group_placement(layout.groups[0], devices, env, *group.mpi);
  if (env.rank() != 0) return group.trainer.run(run, nullptr);
  const RunBudget rb = run_budget(st, run);
  std::filesystem::create_directories(std::filesystem::path(run_path(st, run)).parent_path());
  RunFile file(run_path(st, run), make_header(st, run, rb, placement, group.comm.backend(), group.trainer),
               st.log.flush_seconds);
  RootConsole console(true);
  ProgressState ps;
  ps.run = run.name;
  ps.total_steps = rb.total_steps;
  LeaderSink leader(file, console, ps, st.log.progress_seconds, checkpoint_path(st.output, run.name),
                    fingerprint(st, run));
  TeeSink tee(timing, leader);
  RunResult res = group.trainer.run(run, &tee);
  file.set_status(res.status, res.steps);
  file.flush();
  return res;
}

// The generated study, its plan and the one group of every rank: built once,
// then trained by every run of the benchmark (Trainer::run starts each run
// afresh: parameters from the seed, optimizer, estimator, step counter).
struct Bench {
  Bench(const BenchOptions& options, const std::string& output, const MpiEnv& env);
  BenchOptions o;  // warmup at least 1
  int timed;       // timed steps, a multiple of o.warmup
  Study st;
  Layout layout;
  DevicePlan devices;
  int threads;
  std::unique_ptr<ReplicaGroup> group;
};

BenchOptions normalized(BenchOptions o, const std::string& output) {
  o.warmup = std::max(1, o.warmup);
  o.trace_dir = output;  // the study's output folder (bench_yaml)
  return o;
}

int set_threads(int requested, const MpiEnv& env) {
  const int threads = threads_per_rank(requested, env);
  set_torch_threads(threads);  // before the group: its trainer allocates
  return threads;
}

Bench::Bench(const BenchOptions& options, const std::string& output, const MpiEnv& env)
    : o(normalized(options, output)),
      timed((std::max(1, o.steps) + o.warmup - 1) / o.warmup * o.warmup),
      st(parse_study(bench_yaml(o, env.size(), o.warmup + timed), "batchscope bench (generated study)")),
      layout(plan_layout(st.runs, run_costs(st), env.size())),
      devices(select_devices(st, layout, env)),
      threads(set_threads(o.threads, env)),
      group(make_group(st, devices, env, 0, load_data(st.file, st.data, st.seed))) {}  // every rank

struct Timing {
  double step_ms = 0;  // rank 0's; 0 elsewhere (only rank 0 times)
  double final_loss = 0;
  RunStatus status = RunStatus::Running;
};

// One full run (warm-up and timed steps) with the given switches.
Timing timed_run(Bench& b, const MpiEnv& env, bool stats, const std::string& trace_dir) {
  b.group->trainer.set_noise_statistics(stats);
  TimingSink sink(b.o.warmup, b.o.warmup + b.timed);
  const RunResult res = train_timed(b.st, b.layout, b.devices, env, *b.group, sink, trace_dir);
  return {1e3 * sink.seconds() / b.timed, sink.final_loss(), res.status};
}

// The JSON line's common fields, without the closing brace.
std::string json_head(const Bench& b, const MpiEnv& env, const Timing& t) {
  const BenchOptions& o = b.o;
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "{\"impl\": \"batchscope\", \"torch\": \"%s\", \"device\": \"%s\", \"comm\": \"%s\", "
                "\"model\": \"%s\", \"world\": %d, \"batch_per_rank\": %d, \"steps\": %d, \"warmup\": %d, "
                "\"threads\": %d, \"graphs\": %s, \"step_ms\": %.4f, \"samples_per_s\": %.1f, \"final_loss\": %.6f, "
                "\"status\": \"%s\"",
                torch_version().c_str(), json_escape(b.devices.label[0]).c_str(), b.group->comm.backend().c_str(),
                o.model_file.empty() ? o.model.c_str() : "torchscript", env.size(), o.batch, b.timed, o.warmup,
                b.threads, b.devices.graphs ? "true" : "false", t.step_ms,
                static_cast<double>(env.size()) * o.batch * 1e3 / t.step_ms, t.final_loss, status_name(t.status));
  return buf;
}

int bench_once(const BenchOptions& o, const MpiEnv& env) {
  Bench b(o, o.trace_dir, env);
  const Timing t = timed_run(b, env, o.noise_statistics, o.trace_dir);
  if (env.rank() == 0) std::cout << json_head(b, env, t) << "}" << std::endl;
  return t.status == RunStatus::Completed ? 0 : 1;
}

// One side of a pair: the switches its runs train with.
struct Side {
  bool stats;
  std::string trace_dir;
};

struct PairTimes {
  std::vector<double> a, b;  // step_ms per round: with, without the instrumentation
  Timing last_a;
  bool completed = true;
};

// A B B A A B ...: each round's two runs in turn, the first of a round
// alternating, so that a drift during the benchmark (the machine warming up,
// another job starting) and any effect of running second (caches, allocator)
// fall on both sides alike; A B A B would always give A the earlier slot.
PairTimes run_pair(Bench& b, const MpiEnv& env, const Side& with, const Side& without) {
  PairTimes p;
  for (int r = 0; r < b.o.pair_rounds; ++r) {
    for (int k = 0; k < 2; ++k) {
      const bool a = (k == 0) == (r % 2 == 0);
      const Side& s = a ? with : without;
      const Timing t = timed_run(b, env, s.stats, s.trace_dir);
      (a ? p.a : p.b).push_back(t.step_ms);
      if (a) p.last_a = t;
      p.completed = p.completed && t.status == RunStatus::Completed;
    }
  }
  return p;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct MedianInterval {
  double lo, hi, level;
};

// Distribution-free interval for the median from order statistics: the k-th
// smallest and k-th largest of n values miss the true median with probability
// 2 P(X < k), X ~ Binomial(n, 1/2). k as large as keeps that at most 5 %
// (n = 10: the 2nd and 9th, level 97.9 %); up to 8 values, min and max
// (level 1 - 2^(1-n), below 95 % under 6). Exact and cheap; a bootstrap of
// so few ratios would only resample the same order statistics.
MedianInterval median_interval(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const int n = static_cast<int>(v.size());
  double term = std::ldexp(1.0, -n), below = term;  // P(X = k), P(X <= k) at k = 0
  int k = 0;
  while (2 * (k + 1) < n) {
    term *= static_cast<double>(n - k) / (k + 1);
    if (below + term > 0.025) break;
    below += term;
    ++k;
  }
  return {v[static_cast<size_t>(k)], v[static_cast<size_t>(n - 1 - k)], 1 - 2 * below};
}

// The pair's fields: ratio = with / without the instrumentation, per round.
std::string pair_json(const BenchOptions& o, const PairTimes& p) {
  std::vector<double> r;
  for (size_t i = 0; i < p.a.size(); ++i) r.push_back(p.a[i] / p.b[i]);
  const MedianInterval ci = median_interval(r);
  std::ostringstream j;
  j << std::fixed << std::setprecision(5) << ", \"pair\": \"" << o.pair << "\", \"pair_order\": \"ABBA\""
    << ", \"pair_rounds\": " << o.pair_rounds << ", \"ms_a\": " << median(p.a) << ", \"ms_b\": " << median(p.b)
    << ", \"ratio_median\": " << median(r) << ", \"ratio_min\": " << *std::min_element(r.begin(), r.end())
    << ", \"ratio_max\": " << *std::max_element(r.begin(), r.end()) << ", \"ratio_ci_lo\": " << ci.lo
    << ", \"ratio_ci_hi\": " << ci.hi << ", \"ratio_ci_level\": " << ci.level << ", \"ratios\": [";
  for (size_t i = 0; i < r.size(); ++i) j << (i ? ", " : "") << r[i];
  j << "]";
  return j.str();
}

// --pair trace's folder: --trace's, or a fresh temporary one (rank 0's,
// broadcast: every rank must take the same branch of train_timed, whose
// group_placement is collective; `made`: remove it afterwards).
std::string pair_folder(const BenchOptions& o, const MpiEnv& env, bool& made) {
  made = o.trace_dir.empty();
  if (!made) return o.trace_dir;
  std::string dir = (std::filesystem::temp_directory_path() / "batchscope-bench-XXXXXX").string();
  int ok = 1;
  if (env.rank() == 0) ok = mkdtemp(dir.data()) != nullptr;
  env.broadcast(ok, dir, 0);
  if (!ok) throw std::runtime_error("bench --pair trace: cannot create a temporary folder in " + dir);
  return dir;
}

// --pair stats: noise statistics on / off (the run file as --trace says, on
// both sides); --pair trace: the run file written / not (statistics as
// --no-noise-stats says, on both sides).
int bench_pair(const BenchOptions& o, const MpiEnv& env) {
  const bool trace = o.pair == "trace";
  bool made = false;
  const std::string dir = trace ? pair_folder(o, env, made) : o.trace_dir;
  Bench b(o, dir, env);
  const Side with = trace ? Side{o.noise_statistics, dir} : Side{true, dir};
  const Side without = trace ? Side{o.noise_statistics, ""} : Side{false, dir};
  const PairTimes p = run_pair(b, env, with, without);
  if (env.rank() == 0) {
    Timing t = p.last_a;
    t.step_ms = median(p.a);  // step_ms, samples_per_s: side A's median
    std::cout << json_head(b, env, t) << pair_json(b.o, p) << "}" << std::endl;
    if (made) std::filesystem::remove_all(dir);
  }
  return p.completed ? 0 : 1;
}

}  // namespace

int run_bench(const BenchOptions& o, const MpiEnv& env) {
  return o.pair.empty() ? bench_once(o, env) : bench_pair(o, env);
}

}  // namespace bs
