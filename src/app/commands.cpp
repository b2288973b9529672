#include "app/commands.h"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "app/bench.h"
#include "app/bench_estimate.h"
#include "app/console.h"
#include "app/device_select.h"
#include "app/run_actions.h"
#include "app/study_runner.h"
#include "comm/mpi_env.h"
#include "comm/nccl_communicator.h"
#include "config/study.h"
#include "data/dataset.h"
#include "gpu/cuda_runtime.h"
#include "placement/layout.h"
#include "trace/checkpoint.h"
#include "train/model_check.h"
#include "train/step_graph.h"
#include "train/torch_env.h"
#include "util/blas_info.h"
#include "util/build_info.h"
#include "util/errors.h"
#include "util/signals.h"

namespace bs {
namespace {

int exit_code_for(const std::exception& e) {
  if (dynamic_cast<const ConfigError*>(&e) || dynamic_cast<const LayoutError*>(&e)) return 2;
  if (dynamic_cast<const DataError*>(&e)) return 3;
  if (dynamic_cast<const LibraryError*>(&e)) return 4;
  if (dynamic_cast<const OutputError*>(&e)) return 5;
  if (dynamic_cast<const CheckpointError*>(&e)) return 6;
  return 1;
}

int report(const std::exception& e) {
  std::cerr << "batchscope: error: " << e.what() << std::endl;
  return exit_code_for(e);
}

// Rank 0's one warning when LibTorch computes with the reference BLAS.
void warn_if_slow_blas(const MpiEnv& env) {
  const std::string w = blas_warning(loaded_blas());
  if (env.rank() == 0 && !w.empty()) std::cerr << "batchscope: warning: " << w << std::endl;
}

// `check --bench FILE`: the training time the bench results predict.
std::string bench_estimate_line(const Study& st, const std::string& bench_file) {
  std::ifstream in(bench_file);
  if (!in)
    throw ConfigError(bench_file, "--bench", "cannot read the file (give the JSON lines `batchscope bench` prints)");
  std::stringstream text;
  text << in.rdbuf();
  const StudyEstimate e = estimate_study(st, parse_bench_lines(text.str(), bench_file));
  if (e.runs_estimated == 0)
    return "estimate: " + bench_file + " has no step time of model " + st.model.name +
           " (run `batchscope bench --model " + st.model.name + "` at the study's per-rank batches)\n";
  std::ostringstream os;
  os << "estimate: " << format_duration(e.run_seconds) << " of training summed over " << e.runs_estimated
     << " runs (steps x bench step time at each run's per-rank batch; evaluations not included; groups that "
        "train at once divide it)";
  if (e.runs_without > 0) os << "; " << e.runs_without << " runs without a step time";
  return os.str() + "\n";
}

int cmd_check(const std::string& file, const std::vector<std::string>& sets, const std::string& bench_file) {
  try {
    Study st = load_study(file, sets);
    data_files(st.file, st.data);
    const std::string model_and_data = check_model(st, load_data(st.file, st.data, st.seed));
    // Samples, not steps: steps at different batch sizes are not the same work.
    int64_t samples = 0;
    int max_ranks = 0;
    for (const auto& r : st.runs) {
      samples += run_budget(st, r).total_steps * r.global_batch();
      max_ranks = std::max(max_ranks, r.ranks());
    }
    std::cout << file << ": OK: study '" << st.name << "', " << st.runs.size() << " runs, " << samples
              << " training samples in all, up to " << max_ranks << " ranks per run, output " << st.output << "\n"
              << model_and_data;
    if (!bench_file.empty()) std::cout << bench_estimate_line(st, bench_file);
    return 0;
  } catch (const std::exception& e) {
    return report(e);
  }
}

// `plan`: the world size and, for the GPU view, the hosts' shape.
struct PlanOptions {
  int ranks = 1;
  int gpus = 0;            // per host; 0: no GPU view
  int ranks_per_host = 0;  // 0: every rank on one host
};

int cmd_plan(const std::string& file, const std::vector<std::string>& sets, const PlanOptions& o) {
  try {
    Study st = load_study(file, sets);
    Layout layout = plan_layout(st.runs, run_costs(st), o.ranks);
    std::cout << describe_layout(st, layout);
    if (o.gpus > 0)
      std::cout << describe_gpu_sharing(
          st, layout,
          gpu_sharing(layout, planned_rank_gpus(o.ranks, o.ranks_per_host > 0 ? o.ranks_per_host : o.ranks, o.gpus)));
    return 0;
  } catch (const std::exception& e) {
    return report(e);
  }
}

// What `run` settles before training, alike on every rank.
struct RunSetup {
  Study st;
  Layout layout;
  DevicePlan devices;
  std::vector<RunAction> actions;
  DataSplits data;
};

// Fails alike on every rank, throwing the same error.
RunSetup prepare_run(const std::string& file, const std::vector<std::string>& sets, const RunOptions& opt,
                     const MpiEnv& env) {
  RunSetup s;
  s.st = load_study(file, sets);
  data_files(s.st.file, s.st.data);
  // Data and model are checked (one forward pass on two samples) before
  // anything is written: a model that does not fit is refused here.
  s.data = load_data(s.st.file, s.st.data, s.st.seed);
  check_model(s.st, s.data);
  s.layout = plan_layout(s.st.runs, run_costs(s.st), env.size());
  // Every rank reaches these collectives: the steps above fail alike on all.
  s.devices = select_devices(s.st, s.layout, env);
  // Rank 0's refusal to touch the output folder is rethrown on every rank.
  s.actions = agree_run_actions(s.st, opt, env);
  return s;
}

int cmd_run(int argc, char** argv, const std::string& file, const std::vector<std::string>& sets,
            const RunOptions& opt) {
  // Before MPI_Init, so a signal during start-up is not fatal, and again after
  // it, in case the MPI library installed handlers of its own.
  install_stop_handlers();
  MpiEnv env(&argc, &argv);
  install_stop_handlers();
  RunOptions options = opt;
  options.resume_hint = resume_command({argv[0], file, sets, opt.threads}, env.size());
  RunSetup s;
  // Everything before training fails alike on every rank: rank 0 reports,
  // all exit with the error's code cleanly, no MPI_Abort noise.
  try {
    s = prepare_run(file, sets, options, env);
  } catch (const std::exception& e) {
    if (env.rank() == 0) return report(e);
    return exit_code_for(e);
  }
  warn_if_slow_blas(env);
  try {
    return run_study(s.st, s.layout, s.devices, s.actions, env, options, std::move(s.data));
  } catch (const std::exception& e) {
    // Past this point ranks may be inside collectives with peers that did not
    // fail: only MPI_Abort is sure to end the whole job.
    std::cerr << "batchscope: error on world rank " << env.rank() << " (" << env.host() << "): " << e.what()
              << std::endl;
    env.abort(exit_code_for(e));
  }
}

int cmd_bench(int argc, char** argv, const BenchOptions& bo) {
  install_stop_handlers();
  MpiEnv env(&argc, &argv);
  warn_if_slow_blas(env);
  try {
    return run_bench(bo, env);
  } catch (const ConfigError& e) {
    // Raised alike on every rank (generated study, device plan): exit cleanly.
    if (env.rank() == 0) return report(e);
    return exit_code_for(e);
  } catch (const std::exception& e) {
    std::cerr << "batchscope: error on world rank " << env.rank() << " (" << env.host() << "): " << e.what()
              << std::endl;
    env.abort(exit_code_for(e));
  }
}

}  // namespace

namespace {

// What the command line sets, whichever subcommand it names.
struct CliArgs {
  std::string file;
  std::vector<std::string> sets;
  PlanOptions plan;
  std::string bench_file;  // check --bench
  RunOptions run;
  BenchOptions bench;
};

void add_study_args(CLI::App* sub, CliArgs& a) {
  sub->add_option("study", a.file, "study file (YAML)")->required();
  sub->add_option("--set", a.sets, "override a study key, e.g. --set budget.steps=50 (repeatable)")
      ->take_all()
      ->allow_extra_args(false);
}

CLI::App* add_run(CLI::App& app, CliArgs& a) {
  CLI::App* run = app.add_subcommand("run", "train the study (start it with mpirun -np N)");
  add_study_args(run, a);
  auto* overwrite =
      run->add_flag("--overwrite", a.run.overwrite, "replace run files left by an earlier run of this study");
  run->add_flag("--resume", a.run.resume,
                "continue an earlier job: finished runs are skipped, unfinished ones continue from their checkpoints")
      ->excludes(overwrite);
  run->add_option("--threads", a.run.threads, "LibTorch threads per rank (0: cores / ranks on the node)")
      ->check(CLI::Range(0, 1024));
  return run;
}

CLI::App* add_bench(CLI::App& app, BenchOptions& bo) {
  CLI::App* bench = app.add_subcommand(
      "bench", "time training steps of one model and per-rank batch; prints a JSON line (tests/bench/compare.py)");
  bench->add_option("--model", bo.model, "mlp (784-512-256-10) or cnn")->check(CLI::IsMember({"mlp", "cnn"}));
  bench->add_option("--model-file", bo.model_file, "a TorchScript module (torch.jit.save) to time instead of --model");
  bench->add_option("--batch", bo.batch, "per-rank batch size")->check(CLI::Range(1, 1 << 20));
  bench->add_option("--steps", bo.steps, "timed steps (rounded up to a multiple of --warmup)")
      ->check(CLI::Range(1, 1 << 24));
  bench->add_option("--warmup", bo.warmup, "untimed steps first; also the device read-back interval")
      ->check(CLI::Range(1, 1 << 20));
  bench->add_option("--data", bo.data_root, "Fashion-MNIST IDX folder (default: Debian's)");
  bench->add_option("--device", bo.device, "auto | cpu | cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  bench->add_option("--comm", bo.comm, "auto | mpi | nccl")->check(CLI::IsMember({"auto", "mpi", "nccl"}));
  bench->add_option("--graphs", bo.graphs, "auto | on | off: replay steps from CUDA graphs (gpu.graphs)")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  bench->add_option("--threads", bo.threads, "LibTorch threads per rank (0: cores / ranks on the node)")
      ->check(CLI::Range(0, 1024));
  bench->add_flag("!--no-noise-stats", bo.noise_statistics,
                  "skip the squared norms behind the noise estimate (to measure their cost)");
  bench->add_option("--trace", bo.trace_dir, "also write the run file, as `run` does, into this folder");
  bench
      ->add_option("--pair", bo.pair,
                   "stats | trace: time with and without that instrumentation in this one process, in turn "
                   "(A B B A ...), and report the ratio")
      ->check(CLI::IsMember({"stats", "trace"}));
  bench->add_option("--pair-rounds", bo.pair_rounds, "rounds of --pair, each one run of either side (default 10)")
      ->check(CLI::Range(1, 10000));
  return bench;
}

int cmd_version() {
  std::cout << "batchscope " << build::kVersion << " (" << build::kGitRevision << "); LibTorch " << torch_version()
            << (step_graphs_built() ? "" : " (CPU only)") << ", CUDA " << gpu::runtime_version() << ", NCCL "
            << nccl_version() << "\n"
            << "BLAS: " << loaded_blas().description << "\n";
  // Both counts: LibTorch registers its CUDA backend from libtorch_cuda's static
  // initializers, so a link that dropped that library leaves the runtime seeing
  // GPUs and LibTorch none.
  std::cout << "GPUs: CUDA runtime sees " << gpu::device_count() << ", LibTorch sees " << torch_cuda_devices() << "\n";
  if (nccl_header_version() != nccl_version())
    std::cout << "warning: NCCL header " << nccl_header_version() << " but library " << nccl_version()
              << " loaded (two NCCL installs: set NCCL_ROOT to one)\n";
  return 0;
}

}  // namespace

namespace {

// The first argument when it is neither an option nor a command: a message
// that names the nearest command, or "" when argv[1] is fine.
std::string unknown_command(int argc, char** argv, const CLI::App& app) {
  if (argc < 2 || argv[1][0] == '-') return "";
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  const std::string word = argv[1];
  if (std::find(names.begin(), names.end(), word) != names.end()) return "";
  const std::string near = nearest_name(word, names);
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  return "unknown command '" + word + "'" + (near.empty() ? "" : "; did you mean '" + near + "'?") +
         " (commands: " + list + ")";
}

}  // namespace

int main_entry(int argc, char** argv) {
  CLI::App app{"batchscope: batch-size studies of neural-network training under MPI"};
  app.require_subcommand(1);
  CliArgs a;
  CLI::App* check = app.add_subcommand("check", "validate a study file (and its data paths) without training");
  add_study_args(check, a);
  check->add_option("--bench", a.bench_file,
                    "JSON lines of `batchscope bench` (e.g. compare.py --out): also estimate the training time");
  CLI::App* plan = app.add_subcommand("plan", "print which world ranks train which runs, batches and lrs");
  add_study_args(plan, a);
  plan->add_option("--ranks", a.plan.ranks, "world size to plan for")->required()->check(CLI::Range(1, 1 << 20));
  plan->add_option("--gpus", a.plan.gpus, "GPUs per host: also show which replica groups share each GPU")
      ->check(CLI::Range(1, 1 << 10));
  plan->add_option("--ranks-per-host", a.plan.ranks_per_host,
                   "ranks on each host, filled in order (default: all on one)")
      ->check(CLI::Range(1, 1 << 20));
  add_run(app, a);
  CLI::App* version = app.add_subcommand("version", "print versions");
  CLI::App* bench = add_bench(app, a.bench);
  if (argc >= 2 && std::string(argv[1]) == "--version") return cmd_version();
  if (const std::string bad = unknown_command(argc, argv, app); !bad.empty()) {
    std::cerr << "batchscope: error: " << bad << std::endl;
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (*version) return cmd_version();
  if (*check) return cmd_check(a.file, a.sets, a.bench_file);
  if (*plan) return cmd_plan(a.file, a.sets, a.plan);
  if (*bench) return cmd_bench(argc, argv, a.bench);
  return cmd_run(argc, argv, a.file, a.sets, a.run);
}

}  // namespace bs
