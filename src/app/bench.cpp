#include "app/bench.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

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

}  // namespace

int run_bench(const BenchOptions& o, const MpiEnv& env) {
  const int warmup = std::max(1, o.warmup);
  const int timed = (std::max(1, o.steps) + warmup - 1) / warmup * warmup;
  BenchOptions opts = o;
  opts.warmup = warmup;
  Study st = parse_study(bench_yaml(opts, env.size(), warmup + timed), "batchscope bench (generated study)");
  Layout layout = plan_layout(st.runs, run_costs(st), env.size());
  DevicePlan devices = select_devices(st, layout, env);
  const int threads = threads_per_rank(o.threads, env);
  set_torch_threads(threads);
  std::unique_ptr<ReplicaGroup> group = make_group(st, devices, env, 0, load_data(st.file, st.data, st.seed),
                                                   o.noise_statistics);  // every rank
  TimingSink sink(warmup, warmup + timed);
  RunResult res = train_timed(st, layout, devices, env, *group, sink, o.trace_dir);
  if (env.rank() == 0) {
    const double dt = sink.seconds();
    char buf[1024];
    std::snprintf(buf, sizeof buf,
                  "{\"impl\": \"batchscope\", \"torch\": \"%s\", \"device\": \"%s\", \"comm\": \"%s\", "
                  "\"model\": \"%s\", \"world\": %d, \"batch_per_rank\": %d, \"steps\": %d, \"warmup\": %d, "
                  "\"threads\": %d, \"graphs\": %s, \"step_ms\": %.4f, \"samples_per_s\": %.1f, \"final_loss\": %.6f, "
                  "\"status\": \"%s\"}",
                  torch_version().c_str(), json_escape(devices.label[0]).c_str(), group->comm.backend().c_str(),
                  o.model_file.empty() ? o.model.c_str() : "torchscript", env.size(), o.batch, timed, warmup, threads,
                  devices.graphs ? "true" : "false", 1e3 * dt / timed,
                  static_cast<double>(env.size()) * o.batch * timed / dt, sink.final_loss(), status_name(res.status));
    std::cout << buf << std::endl;
  }
  return res.status == RunStatus::Completed ? 0 : 1;
}

}  // namespace bs
