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
#include "app/device_select.h"
#include "comm/nccl_communicator.h"
#include "comm/text_channel.h"
#include "gpu/cuda_runtime.h"
#include "trace/checkpoint.h"
#include "trace/h5.h"
#include "trace/run_file.h"
#include "train/trainer.h"
#include "train/torch_env.h"
#include "util/build_info.h"
#include "util/errors.h"
#include "util/signals.h"

namespace bs {
namespace {

using Clock = std::chrono::steady_clock;

// What rank 0 decided for each run, broadcast as one character per run.
constexpr char kFresh = 'F', kResume = 'R', kDone = 'D';

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
  size_t groups_done = 0;  // other groups that said they have nothing more to report
  void take(const std::pair<int, std::string>& m) {
    if (m.first == TextChannel::kProgress) std::cout << m.second << std::endl;
    else if (m.first == TextChannel::kRunDone) rows.push_back(SummaryRow::parse(m.second));
    else if (m.first == TextChannel::kGroupDone) ++groups_done;
  }
  void pump() {
    for (auto& m : channel.poll()) take(m);
  }
};

// Writes the run file and sends progress lines to rank 0 at a steady rate.
class LeaderSink final : public RecordSink {
 public:
  LeaderSink(RunFile& file, TextChannel& channel, RootConsole* root, ProgressState state, double progress_s,
             std::string checkpoint, Fingerprint fingerprint)
      : file_(file),
        channel_(channel),
        root_(root),
        state_(std::move(state)),
        every_(progress_s),
        checkpoint_(std::move(checkpoint)),
        fingerprint_(std::move(fingerprint)) {
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
  void on_checkpoint(const TrainState& s) override {
    // The run file first: a checkpoint must never be ahead of the trace.
    file_.flush();
    write_checkpoint(checkpoint_, {fingerprint_, s});
  }
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
  std::string checkpoint_;
  Fingerprint fingerprint_;
};

RunFileHeader make_header(const Study& st, const RunSpec& r, const RunBudget& rb, const std::vector<int32_t>& world_ranks,
                          const std::vector<std::string>& hosts, const std::vector<std::string>& devices,
                          const std::string& comm,
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
                 {"version_nccl", nccl_version()},
                 {"version_cuda", gpu::runtime_version()},
                 {"study_yaml", st.resolved_yaml},
                 {"run_yaml", run_yaml(st, r)},
                 {"model", st.model.name},
                 {"optimizer", st.optimizer.name},
                 {"dataset", st.data.name},
                 {"comm", comm},
                 {"device", devices.empty() || devices[0] == "cpu" ? "cpu" : "cuda"},
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
  h.devices = devices;
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

Fingerprint fingerprint(const Study& st, const RunSpec& r) {
  auto list = [](const std::vector<int64_t>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
    return out + "]";
  };
  auto num = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return std::string(buf);
  };
  const auto& o = st.optimizer;
  return {{"study", st.name},
          {"run", r.name},
          {"data", st.data.name + " train_size " + std::to_string(st.data.effective_train_size())},
          {"model", st.model.name + (st.model.name == "mlp" ? " hidden " + list(st.model.hidden) : "")},
          {"optimizer", o.name + " lr " + num(o.lr) + " ref_batch " + std::to_string(o.ref_batch) + " scaling " +
                            o.scaling + " schedule " + o.schedule + " momentum " + num(o.momentum) + " nesterov " +
                            std::to_string(o.nesterov) + " weight_decay " + num(o.weight_decay) + " betas " +
                            num(o.beta1) + "," + num(o.beta2)},
          {"study seed", std::to_string(st.seed)},
          {"run seed", std::to_string(r.seed)},
          {"run lr", num(r.lr)},
          {"batch_per_rank", list(r.batch_per_rank)},
          {"gns.microbatches", std::to_string(st.gns.microbatches)},
          {"gns.per_layer", std::to_string(st.gns.per_layer)}};
}

int32_t status_in_file(const std::string& path) {
  h5::Handle f = h5::open_file_read(path);
  h5::Handle d = h5::open_dataset(f.id(), "/status/code");
  int32_t code = -1;
  h5::read_rows(d.id(), h5::Type::I32, 1, 0, &code);
  return code;
}

// A run that finished in an earlier job: its summary comes from its file.
SummaryRow summary_from_file(const Study& st, const RunSpec& r, const std::string& path) {
  h5::Handle f = h5::open_file_read(path);
  auto last = [&](const char* name) {
    h5::Handle d = h5::open_dataset(f.id(), name);
    const int64_t n = h5::rows_of(d.id());
    std::vector<double> v(static_cast<size_t>(std::max<int64_t>(n, 1)), std::nan(""));
    h5::read_rows(d.id(), h5::Type::F64, n, 0, v.data());
    return v;
  };
  auto first_int = [&](const char* name) {
    h5::Handle d = h5::open_dataset(f.id(), name);
    int64_t v = -1;
    h5::read_rows(d.id(), h5::Type::I64, 1, 0, &v);
    return v;
  };
  RunResult res;
  res.status = static_cast<RunStatus>(status_in_file(path));
  res.steps = first_int("/status/step");
  res.target_step = first_int("/target/step");
  auto acc = last("/eval/val_acc");
  res.final_eval.val_acc = acc.back();
  for (double a : acc) res.best_val_acc = std::max(res.best_val_acc, a);
  res.final_eval.train_acc = last("/eval/train_acc").back();
  res.wall_s = last("/train/wall_s").back();
  res.samples_per_s = res.wall_s > 0 ? static_cast<double>(res.steps * r.global_batch()) / res.wall_s : 0;
  return summary_row(st, r, res);
}

}  // namespace

int threads_per_rank(int requested, const MpiEnv& env) {
  if (requested > 0) return requested;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, env.local_size()));
}

std::vector<double> run_costs(const Study& st) {
  std::vector<double> c;
  for (const auto& r : st.runs)
    c.push_back(static_cast<double>(run_budget(st, r).total_steps) * static_cast<double>(r.global_batch()));
  return c;
}

int run_study(const Study& st, const Layout& layout, const DevicePlan& devices, const MpiEnv& env,
              const RunOptions& opt) {
  const bool root = env.rank() == 0;
  // Rank 0 alone looks at the output folder, decides for every run whether it
  // starts fresh, resumes from its checkpoint or is already done, and tells
  // everyone, so all ranks stop together before training when something is
  // wrong (exit 5: a run file would be lost; exit 6: a checkpoint is refused).
  int ok = 1;
  std::string why;
  std::string actions(st.runs.size(), kFresh);
  if (root) {
    try {
      make_dirs(st.output + "/runs");
      make_dirs(st.output + "/checkpoints");
      for (size_t i = 0; i < st.runs.size() && ok; ++i) {
        const RunSpec& r = st.runs[i];
        const std::string path = run_path(st, r), ck = checkpoint_path(st.output, r.name);
        if (!file_exists(path) || opt.overwrite) continue;  // fresh
        if (!opt.resume) {
          ok = 0;
          why = "run file " + path +
                " already exists; pass --resume to continue the study, --overwrite to replace its run files, or "
                "set another output (--set output=DIR)";
          break;
        }
        const int32_t code = status_in_file(path);
        if (code == static_cast<int32_t>(RunStatus::Completed) || code == static_cast<int32_t>(RunStatus::Diverged)) {
          actions[i] = kDone;
        } else if (checkpoint_exists(ck)) {
          require_same(ck, read_checkpoint(ck).fingerprint, fingerprint(st, r));
          actions[i] = kResume;
        } else {
          std::cout << "run " << r.name << ": no checkpoint, starting it again" << std::endl;
        }
      }
      if (ok) std::ofstream(st.output + "/study.yaml") << st.resolved_yaml << "\n";
    } catch (const CheckpointError& e) {
      ok = -6;
      why = e.what();
    } catch (const std::exception& e) {
      ok = 0;
      why = e.what();
    }
  }
  env.broadcast(ok, why, 0);
  if (ok <= 0) {
    if (root) std::cerr << "batchscope: error: " << why << std::endl;
    return ok == -6 ? 6 : 5;
  }
  int flag = 0;
  env.broadcast(flag, actions, 0);

  const int g = layout.group_of(env.rank());
  auto comm = env.split(g, env.rank());
  const int threads = threads_per_rank(opt.threads, env);
  set_torch_threads(threads);
  if (root) {
    std::cout << describe_layout(st, layout) << "intra-op threads per rank: " << threads
              << "; " << devices.summary << std::endl;
  }

  TextChannel channel;
  RootConsole console{channel, {}};
  RootConsole* root_console = root ? &console : nullptr;
  int preempted = 0;
  if (comm) {
    const GroupPlan& group = layout.groups[static_cast<size_t>(g)];
    const bool leader = comm->rank() == 0;
    std::vector<int32_t> world_ranks;
    for (int i = 0; i < group.size; ++i) world_ranks.push_back(group.first_rank + i);
    auto hosts = env.allgather(env.host(), comm->comm());
    std::vector<std::string> labels;
    for (int32_t w : world_ranks) labels.push_back(devices.label[static_cast<size_t>(w)]);
    // The group's MPI communicator carries host-side messages (stop votes);
    // the trainer's buffers go through the backend the device plan chose.
    std::unique_ptr<Communicator> device_comm = make_device_comm(st, devices, env.rank(), *comm);
    Communicator& train_comm = device_comm ? *device_comm : static_cast<Communicator&>(*comm);
    DataSplits data = load_data(st.file, st.data, st.seed);
    TrainerOptions topt;
    topt.gpu = devices.gpu[static_cast<size_t>(env.rank())];
    Trainer trainer(st, data, train_comm, topt);
    for (int ri : group.runs) {
      const RunSpec& r = st.runs[static_cast<size_t>(ri)];
      const RunBudget rb = run_budget(st, r);
      const char action = actions[static_cast<size_t>(ri)];
      const std::string path = run_path(st, r), ck = checkpoint_path(st.output, r.name);
      // A signal between runs: the group agrees before starting another one.
      double stop = stop_signal() != 0 ? 1 : 0;
      comm->allreduce_sum(&stop, 1);
      if (stop > 0) {
        preempted = 1;
        break;
      }
      if (action == kDone) {
        if (leader) {
          SummaryRow row = summary_from_file(st, r, path);
          if (root) console.rows.push_back(row);
          else channel.send(TextChannel::kRunDone, row.serialize());
        }
        continue;
      }
      Checkpoint resume_from;
      if (action == kResume) resume_from = read_checkpoint(ck);  // every rank: the same state
      const TrainState* resume_state = action == kResume ? &resume_from.state : nullptr;
      RunResult res;
      if (leader) {
        RunFileHeader header = make_header(st, r, rb, world_ranks, hosts, labels, train_comm.backend(), trainer);
        std::unique_ptr<RunFile> file;
        if (resume_state) {
          const auto& s = *resume_state;
          file = RunFile::resume(path, header, st.log.flush_seconds, s.step, s.eval_rows, s.target_step,
                                 s.target_step >= 0 ? s.target_step * r.global_batch() : -1);
        } else {
          remove_checkpoint(ck);
          file = std::make_unique<RunFile>(path, header, st.log.flush_seconds);
        }
        ProgressState ps;
        ps.run = r.name;
        ps.total_steps = rb.total_steps;
        LeaderSink sink(*file, channel, root_console, ps, st.log.progress_seconds, ck, fingerprint(st, r));
        try {
          res = trainer.run(r, &sink, resume_state);
        } catch (...) {
          file->set_status(RunStatus::Failed, res.steps);
          file->flush();
          throw;
        }
        sink.emit();
        file->set_status(res.status, res.steps);
        file->flush();
        // A finished run needs no checkpoint; a preempted one keeps it.
        if (res.status != RunStatus::Preempted) remove_checkpoint(ck);
        SummaryRow row = summary_row(st, r, res);
        if (root) console.rows.push_back(row);
        else channel.send(TextChannel::kRunDone, row.serialize());
      } else {
        res = trainer.run(r, nullptr, resume_state);
      }
      if (root) console.pump();
      if (res.status == RunStatus::Preempted) {
        preempted = 1;
        break;
      }
    }
    if (leader && !root) channel.send(TextChannel::kGroupDone, std::to_string(g));
  }
  if (root) {
    // Wait for every other group's "done", not for a count of runs: after a
    // preemption, queued runs never start and never report.
    const size_t others = layout.groups.size() - (comm ? 1 : 0);
    while (console.groups_done < others) console.take(channel.wait());
    std::cout << "\n" << summary_table(console.rows);
    std::ofstream(st.output + "/summary.csv") << summary_csv(console.rows);
    std::cout << "run files: " << st.output << "/runs/*.h5, summary: " << st.output << "/summary.csv" << std::endl;
  }
  channel.drain();
  // Every rank returns the same code, so mpirun and the scheduler see one answer.
  int any_preempted = env.allreduce_max(preempted);
  if (any_preempted && root)
    std::cout << "preempted: checkpoints written; continue with: batchscope run " << st.file << " --resume"
              << std::endl;
  return any_preempted ? kExitPreempted : 0;
}

}  // namespace bs
