#include "app/run_actions.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <system_error>

#include "app/study_runner.h"
#include "trace/run_file.h"
#include "util/digest.h"
#include "util/errors.h"

namespace bs {
namespace {

namespace fs = std::filesystem;

// Creates the folder and its parents one by one, so the error names the first
// folder that could not be made rather than the one asked for. Whatever
// already exists is passed over, like mkdir -p: a file in the way fails at
// the next component, or when the run file is created.
void make_dirs(const std::string& folder) {
  fs::path cur;
  for (const fs::path& part : fs::path(folder)) {
    cur /= part;
    std::error_code ec;
    fs::create_directory(cur, ec);
    if (ec && ec != std::errc::file_exists)
      throw OutputError("cannot create folder " + cur.string() + " (study key 'output')");
  }
}

// Writes `text` to `path`, or throws OutputError naming it: a folder that
// exists but takes no file (read-only, no permission, full) is found before
// any training, not when the first run file or checkpoint is created.
void write_or_throw(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  if (!out)
    throw OutputError("cannot write " + path + ": " + std::strerror(errno) +
                      " (study key 'output': the folder must be writable)");
}

// The probe file is removed again: the folder is left as it was.
void require_writable(const std::string& folder) {
  const std::string probe = folder + "/.batchscope-write-test";
  write_or_throw(probe, "");
  std::remove(probe.c_str());
}

bool file_exists(const std::string& path) {
  std::error_code ec;  // unreadable counts as absent, as stat(2) failing did
  return fs::exists(path, ec);
}

// Everything but the files: the study's settings that shape the run.
Fingerprint settings_keys(const Study& st, const RunSpec& r) {
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

// What to do about a run file --resume cannot continue from.
std::string start_again(const RunSpec& r) {
  return "Delete it to train run " + r.name +
         " again from its first step, or pass --overwrite instead of --resume to start every run of the study again";
}

// Under --resume, a run file that cannot be read is refused and left as it
// is: continuing, or starting its run again, would lose whatever it holds.
void require_readable(const RunSpec& r, const std::string& path) {
  const std::string damage = run_file_damage(path);
  if (damage.empty()) return;
  throw OutputError("--resume cannot use run file " + path + ": " + damage + "; it is left as it is. " +
                    start_again(r));
}

// An unfinished run under --resume: it continues from its checkpoint when
// that fits the study and the run file, else starts again. `files` is the
// study's file_fingerprint, taken at the first checkpoint that needs it and
// kept for the other runs (hashing a large data file once per study).
RunAction unfinished_run(const Study& st, const RunSpec& r, const std::string& path,
                         std::optional<Fingerprint>& files) {
  const std::string ck = checkpoint_path(st.output, r.name);
  if (!checkpoint_exists(ck)) {
    std::cout << "run " << r.name << ": no checkpoint, starting it again" << std::endl;
    return RunAction::Fresh;
  }
  const Checkpoint saved = read_checkpoint(ck);
  if (!files) files = file_fingerprint(st);
  require_same(ck, saved.fingerprint, fingerprint(st, r, *files));
  // Checked here, not when the run starts: every rank still stops cleanly.
  try {
    require_rows(path, st.gns.per_layer, saved.state.step, saved.state.eval_rows);
  } catch (const CheckpointError& e) {
    throw CheckpointError(std::string(e.what()) + ". " + start_again(r));
  }
  return RunAction::Resume;
}

// One run's action; throws when its run file may not be touched.
RunAction plan_run(const Study& st, const RunSpec& r, const RunOptions& opt, std::optional<Fingerprint>& files) {
  const std::string path = run_path(st, r);
  if (!file_exists(path) || opt.overwrite) return RunAction::Fresh;
  if (!opt.resume)
    throw OutputError("run file " + path +
                      " already exists; pass --resume to continue the study, --overwrite to replace its run files, "
                      "or set another output (--set output=DIR)");
  require_readable(r, path);
  const RunStatus status = read_run_status(path);
  if (status == RunStatus::Completed || status == RunStatus::Diverged) return RunAction::Done;
  return unfinished_run(st, r, path, files);
}

// How rank 0's planning ended, as broadcast: the error's type, not its exit
// code, which commands.cpp maps in one place.
enum Outcome : int { kPlanned = 0, kOutputRefused = 1, kCheckpointRefused = 2, kDataRefused = 3 };

}  // namespace

std::string run_path(const Study& st, const RunSpec& r) { return st.output + "/runs/" + r.name + ".h5"; }

Fingerprint file_fingerprint(const Study& st) {
  Fingerprint keys;
  auto add = [&keys](const std::string& key, const std::string& path) {
    keys[key] = path + " (" + file_digest(path) + ")";
  };
  if (st.model.name == "torchscript") add("model.file", st.model.path);
  if (st.data.name == "hdf5") add("data.file", st.data.path);
  return keys;
}

Fingerprint fingerprint(const Study& st, const RunSpec& r, const Fingerprint& files) {
  Fingerprint keys = settings_keys(st, r);
  keys.insert(files.begin(), files.end());
  return keys;
}

Fingerprint fingerprint(const Study& st, const RunSpec& r) { return fingerprint(st, r, file_fingerprint(st)); }

std::vector<RunAction> plan_run_actions(const Study& st, const RunOptions& opt) {
  try {
    make_dirs(st.output + "/runs");
    make_dirs(st.output + "/checkpoints");
    require_writable(st.output + "/runs");
    require_writable(st.output + "/checkpoints");
    std::vector<RunAction> actions;
    std::optional<Fingerprint> files;
    for (const RunSpec& r : st.runs) actions.push_back(plan_run(st, r, opt, files));
    write_or_throw(st.output + "/study.yaml", st.resolved_yaml + "\n");
    return actions;
  } catch (const CheckpointError&) {
    throw;
  } catch (const DataError&) {
    throw;  // a model or data file that cannot be read for its digest
  } catch (const OutputError&) {
    throw;
  } catch (const std::exception& e) {
    // Anything else here (an unreadable run file, say) is a problem with the
    // output folder: exit 5, as the README's table says.
    throw OutputError(e.what());
  }
}

std::vector<RunAction> agree_run_actions(const Study& st, const RunOptions& opt, const MpiEnv& env) {
  int outcome = kPlanned;
  std::string text;  // one character per run, or the refusal's message
  if (env.rank() == 0) {
    try {
      for (RunAction a : plan_run_actions(st, opt)) text += static_cast<char>(a);
    } catch (const CheckpointError& e) {
      outcome = kCheckpointRefused;
      text = e.what();
    } catch (const OutputError& e) {
      outcome = kOutputRefused;
      text = e.what();
    } catch (const DataError& e) {
      outcome = kDataRefused;
      text = e.what();
    }
  }
  env.broadcast(outcome, text, 0);
  if (outcome == kCheckpointRefused) throw CheckpointError(text);
  if (outcome == kOutputRefused) throw OutputError(text);
  if (outcome == kDataRefused) throw DataError(text);
  std::vector<RunAction> actions;
  for (char c : text) actions.push_back(static_cast<RunAction>(c));
  return actions;
}

}  // namespace bs
