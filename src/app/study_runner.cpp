#include "app/study_runner.h"

#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <iostream>
#include <thread>

#include "app/console.h"
#include "data/batch_plan.h"
#include "data/dataset.h"
#include "dist/text_channel.h"
#include "trace/h5.h"
#include "trace/run_file.h"
#include "train/trainer.h"
#include "util/build_info.h"
#include "util/errors.h"

namespace bs {
namespace {

using Clock = std::chrono::steady_clock;

void make_dirs(const std::string& path) {
  std::string cur;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      if (!cur.empty() && ::mkdir(cur.c_str(), 0775) != 0 && errno != EEXIST)
        throw OutputError("cannot create folder " + cur + " (study key 'output')");
    }
    if (i < path.size()) cur += path[i];
  }
}

bool file_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

std::string run_path(const Study& st, const RunSpec& r) { return st.output + "/runs/" + r.name + ".h5"; }

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string mpi_version() {
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(v, &len);
  std::string s(v, static_cast<size_t>(len));
  auto nl = s.find_first_of(",\n");
  return nl == std::string::npos ? s : s.substr(0, nl);
}

// World rank 0's view of the console: its own lines plus what other group
// leaders sent, printed as they arrive; run summaries are kept for the table.
struct RootConsole {
  TextChannel& channel;
  std::vector<SummaryRow> rows;
  void take(const std::pair<int, std::string>& m) {
    if (m.first == TextChannel::kProgress) std::cout << m.second << std::endl;
    else rows.push_back(SummaryRow::parse(m.second));
  }
  void pump() {
    for (auto& m : channel.poll()) take(m);
  }
};

// Writes the run file and sends progress lines to rank 0 at a steady rate.
class LeaderSink final : public RecordSink {
 public:
  LeaderSink(RunFile& file, TextChannel& channel, RootConsole* root, ProgressState state, double progress_s)
      : file_(file), channel_(channel), root_(root), state_(std::move(state)), every_(progress_s) {
    last_ = Clock::now();
  }
  void on_steps(const std::vector<StepRecord>& rows) override {
    file_.append(rows);
    file_.maybe_flush();
    const auto& r = rows.back();
    state_.step = r.step;
    state_.epoch = r.epoch;
    state_.loss = r.loss;
    state_.samples_per_s = r.wall_s > 0 ? static_cast<double>(r.samples) / r.wall_s : 0;
    state_.eta_s = r.step > 0 ? r.wall_s / static_cast<double>(r.step) * static_cast<double>(state_.total_steps - r.step) : 0;
    if (std::chrono::duration<double>(Clock::now() - last_).count() >= every_) emit();
    if (root_) root_->pump();
  }
  void on_eval(const EvalRecord& e) override {
    file_.append(e);
    state_.val_acc = e.val_acc;
  }
  void on_target(int64_t step, int64_t samples) override { file_.set_target_reached(step, samples); }
  void emit() {
    last_ = Clock::now();
    std::string line = progress_line(state_);
    if (root_) {
      std::cout << line << std::endl;
      root_->pump();
    } else {
      channel_.send(TextChannel::kProgress, line);
    }
  }

 private:
  RunFile& file_;
  TextChannel& channel_;
  RootConsole* root_;
  ProgressState state_;
  double every_;
  Clock::time_point last_;
};

RunFileHeader make_header(const Study& st, const RunSpec& r, const RunBudget& rb, const std::vector<int32_t>& world_ranks,
                          const std::vector<std::string>& hosts, const std::string& device, const std::string& comm,
                          const Trainer& trainer) {
  RunFileHeader h;
  h.str_attrs = {{"study", st.name},
                 {"run", r.name},
                 {"created", utc_now()},
                 {"git_revision", build::kGitRevision},
                 {"version_batchscope", build::kVersion},
                 {"version_torch", torch_version()},
                 {"version_mpi", mpi_version()},
                 {"version_hdf5", h5::library_version()},
                 {"version_nccl", "none"},
                 {"version_cuda", "none"},
                 {"study_yaml", st.resolved_yaml},
                 {"run_yaml", run_yaml(st, r)},
                 {"model", st.model.name},
                 {"optimizer", st.optimizer.name},
                 {"dataset", st.data.name},
                 {"comm", comm},
                 {"device", device},
                 {"target_metric", st.target.metric}};
  h.int_attrs = {{"seed", static_cast<int64_t>(r.seed)},
                 {"study_seed", static_cast<int64_t>(st.seed)},
                 {"global_batch", r.global_batch()},
                 {"ranks", r.ranks()},
                 {"steps_per_epoch", rb.steps_per_epoch},
                 {"total_steps", rb.total_steps},
                 {"microbatches", st.gns.microbatches},
                 {"target_stop", st.target.enabled() && st.target.stop ? 1 : 0}};
  h.float_attrs = {{"base_lr", r.lr},
                   {"peak_lr", rb.peak_lr},
                   {"ema_beta", st.gns.ema_beta},
                   {"target_value", st.target.enabled() ? st.target.value : std::nan("")}};
  h.world_ranks = world_ranks;
  h.hosts = hosts;
  h.devices.assign(hosts.size(), device);
  for (auto b : r.batch_per_rank) h.batch_per_rank.push_back(static_cast<int32_t>(b));
  for (auto b : micro_batches(r.batch_per_rank, st.gns.microbatches)) h.batch_micro.push_back(static_cast<int32_t>(b));
  h.layers = trainer.layer_names();
  for (auto k : trainer.layer_numel()) h.layer_numel.push_back(static_cast<int32_t>(k));
  h.per_layer = st.gns.per_layer;
  h.global_batch = r.global_batch();
  h.train_size = st.data.effective_train_size();
  h.test_size = st.data.effective_test_size();
  return h;
}

SummaryRow summary_row(const Study& st, const RunSpec& r, const RunResult& res) {
  SummaryRow s;
  s.run = r.name;
  s.global_batch = r.global_batch();
  s.ranks = r.ranks();
  s.lr = r.lr;
  s.peak_lr = run_budget(st, r).peak_lr;
  s.seed = r.seed;
  s.status = status_name(res.status);
  s.steps = res.steps;
  s.steps_to_target = res.target_step;
  s.final_val_acc = res.final_eval.val_acc;
  s.best_val_acc = res.best_val_acc;
  s.final_train_acc = res.final_eval.train_acc;
  s.samples_per_s = res.samples_per_s;
  s.wall_s = res.wall_s;
  return s;
}

}  // namespace

std::vector<double> run_costs(const Study& st) {
  std::vector<double> c;
  for (const auto& r : st.runs)
    c.push_back(static_cast<double>(run_budget(st, r).total_steps) * static_cast<double>(r.global_batch()));
  return c;
}

int run_study(const Study& st, const Layout& layout, const MpiEnv& env, const RunOptions& opt) {
  const bool root = env.rank() == 0;
  // Rank 0 alone looks at the output folder and tells everyone, so all ranks
  // stop together (exit 5) before training if a run file would be lost.
  int ok = 1;
  std::string why;
  if (root) {
    try {
      make_dirs(st.output + "/runs");
      for (const auto& r : st.runs)
        if (!opt.overwrite && file_exists(run_path(st, r))) {
          ok = 0;
          why = "run file " + run_path(st, r) +
                " already exists; pass --overwrite to replace the study's run files, or set another output "
                "(--set output=DIR)";
          break;
        }
      if (ok) std::ofstream(st.output + "/study.yaml") << st.resolved_yaml << "\n";
    } catch (const std::exception& e) {
      ok = 0;
      why = e.what();
    }
  }
  env.broadcast(ok, why, 0);
  if (!ok) {
    if (root) std::cerr << "batchscope: error: " << why << std::endl;
    return 5;
  }

  const int g = layout.group_of(env.rank());
  auto comm = env.split(g, env.rank());
  const int threads = opt.threads > 0 ? opt.threads : std::max(1u, std::thread::hardware_concurrency()) /
                                                          static_cast<unsigned>(std::max(1, env.local_size()));
  set_torch_threads(std::max(1, threads));
  if (root) {
    std::cout << describe_layout(st, layout) << "intra-op threads per rank: " << std::max(1, threads)
              << "; communicator: mpi; device: cpu" << std::endl;
  }

  TextChannel channel;
  RootConsole console{channel, {}};
  RootConsole* root_console = root ? &console : nullptr;
  if (comm) {
    const GroupPlan& group = layout.groups[static_cast<size_t>(g)];
    const bool leader = comm->rank() == 0;
    std::vector<int32_t> world_ranks;
    for (int i = 0; i < group.size; ++i) world_ranks.push_back(group.first_rank + i);
    auto hosts = env.allgather(env.host(), comm->comm());
    DataSplits data = load_data(st.file, st.data, st.seed);
    Trainer trainer(st, data, *comm);
    for (int ri : group.runs) {
      const RunSpec& r = st.runs[static_cast<size_t>(ri)];
      const RunBudget rb = run_budget(st, r);
      RunResult res;
      if (leader) {
        RunFile file(run_path(st, r), make_header(st, r, rb, world_ranks, hosts, trainer.device_name(), comm->backend(), trainer),
                     st.log.flush_seconds);
        ProgressState ps;
        ps.run = r.name;
        ps.total_steps = rb.total_steps;
        LeaderSink sink(file, channel, root_console, ps, st.log.progress_seconds);
        try {
          res = trainer.run(r, &sink);
        } catch (...) {
          file.set_status(RunStatus::Failed, res.steps);
          file.flush();
          throw;
        }
        sink.emit();
        file.set_status(res.status, res.steps);
        file.flush();
        SummaryRow row = summary_row(st, r, res);
        if (root) console.rows.push_back(row);
        else channel.send(TextChannel::kRunDone, row.serialize());
      } else {
        res = trainer.run(r, nullptr);
      }
      if (root) console.pump();
    }
  }
  if (root) {
    while (console.rows.size() < st.runs.size()) console.take(channel.wait());
    std::cout << "\n" << summary_table(console.rows);
    std::ofstream(st.output + "/summary.csv") << summary_csv(console.rows);
    std::cout << "run files: " << st.output << "/runs/*.h5, summary: " << st.output << "/summary.csv" << std::endl;
  }
  channel.drain();
  return 0;
}

}  // namespace bs
