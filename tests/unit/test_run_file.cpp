// The HDF5 run file: layout, round trip, and a concurrent SWMR reader.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include <gtest/gtest.h>
#include <hdf5.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "trace/run_file.h"
#include "trace/run_file_columns.h"
#include "util/errors.h"

extern char** environ;

namespace bs {
namespace {

// ------------------------------------------------------------ reading helpers

struct File {
  hid_t id;
  explicit File(const std::string& path) : id(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT)) {}
  ~File() {
    if (id >= 0) H5Fclose(id);
  }
};

std::vector<hsize_t> dims_of(hid_t f, const char* name) {
  std::vector<hsize_t> out;
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) return out;
  hid_t s = H5Dget_space(d);
  int n = H5Sget_simple_extent_ndims(s);
  if (n > 0) {
    out.resize(static_cast<size_t>(n));
    H5Sget_simple_extent_dims(s, out.data(), nullptr);
  }
  H5Sclose(s);
  H5Dclose(d);
  return out;
}

template <typename T>
hid_t native();
template <>
hid_t native<int32_t>() {
  return H5T_NATIVE_INT32;
}
template <>
hid_t native<int64_t>() {
  return H5T_NATIVE_INT64;
}
template <>
hid_t native<float>() {
  return H5T_NATIVE_FLOAT;
}
template <>
hid_t native<double>() {
  return H5T_NATIVE_DOUBLE;
}

// Reads a whole numeric dataset (flattened, row-major); empty on failure.
template <typename T>
std::vector<T> read_all(hid_t f, const char* name) {
  std::vector<T> out;
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) return out;
  hid_t s = H5Dget_space(d);
  hssize_t n = H5Sget_simple_extent_npoints(s);
  out.resize(static_cast<size_t>(n));
  if (n > 0 && H5Dread(d, native<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) out.clear();
  H5Sclose(s);
  H5Dclose(d);
  return out;
}

std::string read_str_attr(hid_t obj, const char* name) {
  std::string out;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return "<missing>";
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  char* p = nullptr;
  if (H5Aread(a, t, &p) >= 0 && p) {
    out = p;
    H5free_memory(p);
  }
  H5Tclose(t);
  H5Aclose(a);
  return out;
}

// The links directly under `group` ("/" for the root), by name.
std::set<std::string> links_in(hid_t f, const std::string& group) {
  std::set<std::string> out;
  hid_t g = H5Gopen2(f, group.c_str(), H5P_DEFAULT);
  if (g < 0) return out;
  H5G_info_t info;
  if (H5Gget_info(g, &info) >= 0)
    for (hsize_t i = 0; i < info.nlinks; ++i) {
      char name[256] = {0};
      if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) >= 0)
        out.insert(name);
    }
  H5Gclose(g);
  return out;
}

int64_t read_int_attr(hid_t obj, const char* name) {
  int64_t v = -999;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return v;
  H5Aread(a, H5T_NATIVE_INT64, &v);
  H5Aclose(a);
  return v;
}

// ------------------------------------------------------------ test data

constexpr int kRanks = 2;

StepRecord step_record(int64_t step) {
  StepRecord r;
  r.step = step;
  r.samples = step * 64;
  r.epoch = static_cast<int32_t>(step / 10);
  r.lr = 0.01 * static_cast<double>(step);
  r.loss = 2.0 / static_cast<double>(step);
  r.loss_rank = {static_cast<float>(step) + 0.25f, static_cast<float>(step) + 0.5f};
  r.wall_s = 0.125 * static_cast<double>(step);
  r.step_ms = 1.5f * static_cast<float>(step);
  r.sqnorm_local = {10.0f * static_cast<float>(step), 20.0f * static_cast<float>(step)};
  r.sqnorm_global = 5.0f * static_cast<float>(step);
  r.g2_est = 0.5 * static_cast<double>(step);
  r.trsigma_est = 3.0 * static_cast<double>(step);
  r.b_simple = 6.0;
  return r;
}

EvalRecord eval_record(int64_t step) {
  EvalRecord e;
  e.step = step;
  e.samples = step * 64;
  e.epoch = static_cast<double>(step) / 10.0;
  e.val_loss = 1.0 / (1.0 + static_cast<double>(step));
  e.val_acc = 0.5 + 0.01 * static_cast<double>(step);
  e.train_loss = 0.9 / (1.0 + static_cast<double>(step));
  e.train_acc = 0.55 + 0.01 * static_cast<double>(step);
  return e;
}

RunFileHeader header() {
  RunFileHeader h;
  h.str_attrs = {{"study", "unit"}, {"run", "b64_lr0.1_s1"}};
  h.int_attrs = {{"seed", 5}};
  h.float_attrs = {{"peak_lr", 0.1}};
  h.world_ranks = {0, 1};
  h.hosts = {"node0", "node0"};
  h.devices = {"cpu", "cpu"};
  h.batch_per_rank = {16, 48};
  h.global_batch = 64;
  h.train_size = 60000;
  h.test_size = 10000;
  return h;
}

// A fresh folder under the test temp dir, removed with everything in it.
struct TempFolder {
  std::string path;
  TempFolder() {
    std::string tmpl = ::testing::TempDir() + "bs_run_file_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data())) path = buf.data();
  }
  ~TempFolder() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

// ------------------------------------------------------------ SWMR reader process
//
// The concurrent reader must be another process (inside one process HDF5 would
// share the writer's open file and cache). The test re-executes this binary with
// BS_SWMR_READER=<path>:<rows>; a static initializer sees it before main, reads
// the file and exits with 0 when the expected rows are there.

int swmr_reader(const std::string& path, int64_t rows) {
  File f(path);
  if (f.id < 0) {
    std::fprintf(stderr, "reader: H5Fopen(SWMR_READ) failed on %s\n", path.c_str());
    return 10;
  }
  auto d = dims_of(f.id, "/train/step");
  if (d.size() != 1 || static_cast<int64_t>(d[0]) != rows) {
    std::fprintf(stderr, "reader: /train/step has %zu dims, first %lld, want %lld rows\n", d.size(),
                 d.empty() ? -1LL : static_cast<long long>(d[0]), static_cast<long long>(rows));
    return 11;
  }
  auto steps = read_all<int64_t>(f.id, "/train/step");
  for (int64_t i = 0; i < rows; ++i)
    if (steps.size() != static_cast<size_t>(rows) || steps[static_cast<size_t>(i)] != i + 1) {
      std::fprintf(stderr, "reader: /train/step values wrong\n");
      return 12;
    }
  auto local = read_all<float>(f.id, "/gns/sqnorm_local");
  if (local.size() != static_cast<size_t>(rows * kRanks) ||
      (rows > 0 && local.back() != 20.0f * static_cast<float>(rows))) {
    std::fprintf(stderr, "reader: /gns/sqnorm_local wrong\n");
    return 13;
  }
  auto code = read_all<int32_t>(f.id, "/status/code");
  if (code.size() != 1 || code[0] != 0) {
    std::fprintf(stderr, "reader: /status/code should be 0 (running)\n");
    return 14;
  }
  if (read_str_attr(f.id, "schema") != "batchscope-run") return 15;
  return 0;
}

struct ReaderHook {
  ReaderHook() {
    const char* spec = std::getenv("BS_SWMR_READER");
    if (!spec) return;
    std::string s(spec);
    auto colon = s.rfind(':');
    int rc = swmr_reader(s.substr(0, colon), std::atoll(s.c_str() + colon + 1));
    std::fflush(stderr);
    std::_Exit(rc);
  }
};
const ReaderHook reader_hook;

// Runs the reader in a child process; returns its exit code (or -1).
int run_reader_process(const std::string& path, int64_t rows) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "BS_SWMR_READER=", 15) != 0) env_strings.emplace_back(*e);
  env_strings.push_back("BS_SWMR_READER=" + path + ":" + std::to_string(rows));
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe";
  std::vector<char*> argv{exe.data(), nullptr};
  pid_t pid = 0;
  if (posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv.data(), envp.data()) != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ------------------------------------------------------------ tests

TEST(RunFile, WritesSchemaAndRoundTripsRows) {
  TempFolder tmp;
  ASSERT_FALSE(tmp.path.empty()) << "mkdtemp failed";
  const std::string path = tmp.path + "/run.h5";
  {
    RunFile rf(path, header(), 3600.0);
    EXPECT_EQ(rf.path(), path);
    std::vector<StepRecord> block1{step_record(1), step_record(2), step_record(3)};
    std::vector<StepRecord> block2{step_record(4), step_record(5)};
    rf.append(block1);
    rf.append(eval_record(3));
    rf.append(block2);
    rf.append(std::vector<StepRecord>{});  // no-op
    rf.append(eval_record(5));
    rf.set_status(RunStatus::Completed, 5);
  }  // destroyed: flushed and closed

  File f(path);
  ASSERT_GE(f.id, 0) << "H5Fopen failed on " << path;
  // Root attributes.
  EXPECT_EQ(read_str_attr(f.id, "schema"), "batchscope-run");
  EXPECT_EQ(read_int_attr(f.id, "schema_version"), kSchemaVersion);
  EXPECT_EQ(read_str_attr(f.id, "study"), "unit");
  EXPECT_EQ(read_str_attr(f.id, "run"), "b64_lr0.1_s1");
  EXPECT_EQ(read_int_attr(f.id, "seed"), 5);

  // Shapes.
  const hsize_t T = 5, E = 2;
  EXPECT_EQ(dims_of(f.id, "/train/step"), (std::vector<hsize_t>{T}));
  EXPECT_EQ(dims_of(f.id, "/train/loss"), (std::vector<hsize_t>{T}));
  EXPECT_EQ(dims_of(f.id, "/train/loss_rank"), (std::vector<hsize_t>{T, kRanks}));
  EXPECT_EQ(dims_of(f.id, "/gns/sqnorm_local"), (std::vector<hsize_t>{T, kRanks}));
  EXPECT_EQ(dims_of(f.id, "/gns/sqnorm_global"), (std::vector<hsize_t>{T}));
  EXPECT_EQ(dims_of(f.id, "/gns/b_simple"), (std::vector<hsize_t>{T}));
  EXPECT_EQ(dims_of(f.id, "/eval/val_acc"), (std::vector<hsize_t>{E}));
  EXPECT_EQ(dims_of(f.id, "/eval/step"), (std::vector<hsize_t>{E}));
  EXPECT_EQ(dims_of(f.id, "/status/code"), (std::vector<hsize_t>{1}));

  // Values.
  auto step = read_all<int64_t>(f.id, "/train/step");
  auto samples = read_all<int64_t>(f.id, "/train/samples");
  auto epoch = read_all<int32_t>(f.id, "/train/epoch");
  auto lr = read_all<double>(f.id, "/train/lr");
  auto loss = read_all<double>(f.id, "/train/loss");
  auto loss_rank = read_all<float>(f.id, "/train/loss_rank");
  auto wall = read_all<double>(f.id, "/train/wall_s");
  auto step_ms = read_all<float>(f.id, "/train/step_ms");
  auto local = read_all<float>(f.id, "/gns/sqnorm_local");
  auto global = read_all<float>(f.id, "/gns/sqnorm_global");
  auto g2 = read_all<double>(f.id, "/gns/g2_est");
  auto tr = read_all<double>(f.id, "/gns/trsigma_est");
  auto bsim = read_all<double>(f.id, "/gns/b_simple");
  ASSERT_EQ(step.size(), T);
  ASSERT_EQ(loss_rank.size(), T * kRanks);
  ASSERT_EQ(local.size(), T * kRanks);
  ASSERT_EQ(samples.size(), T);
  ASSERT_EQ(epoch.size(), T);
  ASSERT_EQ(lr.size(), T);
  ASSERT_EQ(loss.size(), T);
  ASSERT_EQ(wall.size(), T);
  ASSERT_EQ(step_ms.size(), T);
  ASSERT_EQ(global.size(), T);
  ASSERT_EQ(g2.size(), T);
  ASSERT_EQ(tr.size(), T);
  ASSERT_EQ(bsim.size(), T);
  for (size_t i = 0; i < T; ++i) {
    SCOPED_TRACE(i);
    const StepRecord r = step_record(static_cast<int64_t>(i) + 1);
    EXPECT_EQ(step[i], r.step);
    EXPECT_EQ(samples[i], r.samples);
    EXPECT_EQ(epoch[i], r.epoch);
    EXPECT_EQ(lr[i], r.lr);
    EXPECT_EQ(loss[i], r.loss);
    EXPECT_EQ(loss_rank[2 * i], r.loss_rank[0]);
    EXPECT_EQ(loss_rank[2 * i + 1], r.loss_rank[1]);
    EXPECT_EQ(wall[i], r.wall_s);
    EXPECT_EQ(step_ms[i], r.step_ms);
    EXPECT_EQ(local[2 * i], r.sqnorm_local[0]);
    EXPECT_EQ(local[2 * i + 1], r.sqnorm_local[1]);
    EXPECT_EQ(global[i], r.sqnorm_global);
    EXPECT_EQ(g2[i], r.g2_est);
    EXPECT_EQ(tr[i], r.trsigma_est);
    EXPECT_EQ(bsim[i], r.b_simple);
  }

  auto e_step = read_all<int64_t>(f.id, "/eval/step");
  auto e_samples = read_all<int64_t>(f.id, "/eval/samples");
  auto e_epoch = read_all<double>(f.id, "/eval/epoch");
  auto e_vloss = read_all<double>(f.id, "/eval/val_loss");
  auto e_vacc = read_all<double>(f.id, "/eval/val_acc");
  auto e_tloss = read_all<double>(f.id, "/eval/train_loss");
  auto e_tacc = read_all<double>(f.id, "/eval/train_acc");
  ASSERT_EQ(e_step.size(), E);
  ASSERT_EQ(e_vacc.size(), E);
  ASSERT_EQ(e_samples.size(), E);
  ASSERT_EQ(e_epoch.size(), E);
  ASSERT_EQ(e_vloss.size(), E);
  ASSERT_EQ(e_tloss.size(), E);
  ASSERT_EQ(e_tacc.size(), E);
  const int64_t eval_steps[2] = {3, 5};
  for (size_t i = 0; i < E; ++i) {
    const EvalRecord e = eval_record(eval_steps[i]);
    EXPECT_EQ(e_step[i], e.step);
    EXPECT_EQ(e_samples[i], e.samples);
    EXPECT_EQ(e_epoch[i], e.epoch);
    EXPECT_EQ(e_vloss[i], e.val_loss);
    EXPECT_EQ(e_vacc[i], e.val_acc);
    EXPECT_EQ(e_tloss[i], e.train_loss);
    EXPECT_EQ(e_tacc[i], e.train_acc);
  }

  // Status and layout.
  EXPECT_EQ(read_all<int32_t>(f.id, "/status/code"), (std::vector<int32_t>{1}));
  EXPECT_EQ(read_all<int64_t>(f.id, "/status/step"), (std::vector<int64_t>{5}));
  EXPECT_EQ(static_cast<int32_t>(RunStatus::Completed), 1);
  EXPECT_STREQ(status_name(RunStatus::Completed), "completed");
  EXPECT_EQ(read_all<int32_t>(f.id, "/layout/batch_per_rank"), (std::vector<int32_t>{16, 48}));
  EXPECT_EQ(read_all<int32_t>(f.id, "/layout/world_ranks"), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(read_all<int64_t>(f.id, "/layout/global_batch"), (std::vector<int64_t>{64}));
  EXPECT_EQ(read_all<int64_t>(f.id, "/layout/train_size"), (std::vector<int64_t>{60000}));
  EXPECT_EQ(read_all<int64_t>(f.id, "/layout/test_size"), (std::vector<int64_t>{10000}));
}

TEST(RunFile, StatusCodes) {
  EXPECT_STREQ(status_name(RunStatus::Running), "running");
  EXPECT_STREQ(status_name(RunStatus::Diverged), "diverged");
  EXPECT_STREQ(status_name(RunStatus::Failed), "failed");
  EXPECT_STREQ(status_name(RunStatus::Preempted), "preempted");
  TempFolder tmp;
  ASSERT_FALSE(tmp.path.empty()) << "mkdtemp failed";
  const std::string path = tmp.path + "/diverged.h5";
  {
    RunFile rf(path, header(), 3600.0);
    rf.append(std::vector<StepRecord>{step_record(1)});
    rf.set_status(RunStatus::Diverged, 1);
  }
  File f(path);
  ASSERT_GE(f.id, 0);
  EXPECT_EQ(read_all<int32_t>(f.id, "/status/code"), (std::vector<int32_t>{2}));
  EXPECT_EQ(read_all<int64_t>(f.id, "/status/step"), (std::vector<int64_t>{1}));
}

TEST(RunFile, ConcurrentSwmrReaderSeesFlushedRows) {
  TempFolder tmp;
  ASSERT_FALSE(tmp.path.empty()) << "mkdtemp failed";
  const std::string path = tmp.path + "/live.h5";
  RunFile rf(path, header(), 3600.0);
  // Right after creation: the header and an empty trace are readable.
  EXPECT_EQ(run_reader_process(path, 0), 0);

  rf.append(std::vector<StepRecord>{step_record(1), step_record(2), step_record(3)});
  rf.flush();
  EXPECT_EQ(run_reader_process(path, 3), 0) << "a SWMR reader should see the 3 flushed rows";

  rf.append(std::vector<StepRecord>{step_record(4), step_record(5)});
  rf.flush();
  EXPECT_EQ(run_reader_process(path, 5), 0) << "a SWMR reader should see all 5 flushed rows";
  // The reader really checks: asking for a row count that is not there fails.
  EXPECT_NE(run_reader_process(path, 6), 0);
}

// The output folder's fault, not the library's: exit 5 (README's exit codes).
TEST(RunFile, UnwritableFolderIsAnOutputError) {
  // Silence HDF5's own error stack for this expected failure.
  H5E_auto2_t func = nullptr;
  void* data = nullptr;
  H5Eget_auto2(H5E_DEFAULT, &func, &data);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  EXPECT_THROW(RunFile("/nonexistent-batchscope-dir/sub/run.h5", header(), 1.0), OutputError);
  H5Eset_auto2(H5E_DEFAULT, func, data);
}

TEST(RunFile, SchemaV2MicroBatchesLayersAndTarget) {
  TempFolder dir;
  const std::string path = dir.path + "/v2.h5";
  {
    RunFileHeader h = header();
    h.batch_micro = {8, 8, 24, 24};  // m = 2
    h.layers = {"fc.weight", "fc.bias", "out.weight"};
    h.layer_numel = {100, 10, 30};
    h.per_layer = true;
    RunFile rf(path, h, 1.0);
    std::vector<StepRecord> rows;
    for (int64_t s = 1; s <= 3; ++s) {
      StepRecord r = step_record(s);
      r.sqnorm_micro = {1.f * s, 2.f * s, 3.f * s, 4.f * s};
      for (int k = 0; k < 4 * 3; ++k) r.layer_micro.push_back(static_cast<float>(100 * s + k));
      r.layer_global = {0.5f, 0.25f, 0.125f};
      rows.push_back(r);
    }
    rf.append(rows);
    rf.set_target_reached(3, 192);
    rf.flush();
  }
  File f(path);
  ASSERT_GE(f.id, 0);
  EXPECT_EQ(read_int_attr(f.id, "schema_version"), 3);
  EXPECT_EQ(read_all<int32_t>(f.id, "/layout/batch_micro"), (std::vector<int32_t>{8, 8, 24, 24}));
  EXPECT_EQ(read_all<int32_t>(f.id, "/layout/layer_numel"), (std::vector<int32_t>{100, 10, 30}));
  EXPECT_EQ(dims_of(f.id, "/gns/sqnorm_micro"), (std::vector<hsize_t>{3, 4}));
  EXPECT_EQ(dims_of(f.id, "/gns/sqnorm_layer_micro"), (std::vector<hsize_t>{3, 12}));
  EXPECT_EQ(dims_of(f.id, "/gns/sqnorm_layer_global"), (std::vector<hsize_t>{3, 3}));
  auto micro = read_all<float>(f.id, "/gns/sqnorm_micro");
  ASSERT_EQ(micro.size(), 12u);
  EXPECT_EQ(micro[4 + 3], 8.f);  // step 2, micro-batch 3
  auto lm = read_all<float>(f.id, "/gns/sqnorm_layer_micro");
  ASSERT_EQ(lm.size(), 36u);
  EXPECT_EQ(lm[2 * 12 + 5], 305.f);
  EXPECT_EQ(read_all<int64_t>(f.id, "/target/step"), (std::vector<int64_t>{3}));
  EXPECT_EQ(read_all<int64_t>(f.id, "/target/samples"), (std::vector<int64_t>{192}));
}

TEST(RunFile, DefaultsToOneMicroBatchAndNoTarget) {
  TempFolder dir;
  const std::string path = dir.path + "/m1.h5";
  {
    RunFile rf(path, header(), 1.0);
    rf.append(std::vector<StepRecord>{step_record(1)});
  }
  File f(path);
  EXPECT_EQ(read_all<int32_t>(f.id, "/layout/batch_micro"), (std::vector<int32_t>{16, 48}));
  EXPECT_EQ(read_all<float>(f.id, "/gns/sqnorm_micro"), (std::vector<float>{10.f, 20.f}));  // = sqnorm_local
  EXPECT_EQ(read_all<int64_t>(f.id, "/target/step"), (std::vector<int64_t>{-1}));
  EXPECT_TRUE(dims_of(f.id, "/gns/sqnorm_layer_micro").empty()) << "per-layer datasets only when asked for";
}

TEST(RunFile, RejectsRowsOfTheWrongWidth) {
  TempFolder dir;
  RunFile rf(dir.path + "/w.h5", header(), 1.0);
  StepRecord r = step_record(1);
  r.loss_rank.pop_back();  // 1 value for 2 ranks: HDF5 would read past the vector
  EXPECT_THROW(rf.append(std::vector<StepRecord>{r}), std::invalid_argument);
  RunFileHeader bad = header();
  bad.layers = {"a"};
  EXPECT_THROW(RunFile(dir.path + "/bad.h5", bad, 1.0), std::invalid_argument);
}

TEST(RunFile, SummaryReadsBackWhatWasWritten) {
  TempFolder dir;
  const std::string path = dir.path + "/sum.h5";
  {
    RunFile rf(path, header(), 1.0);
    rf.append(std::vector<StepRecord>{step_record(1), step_record(2), step_record(3)});
    rf.append(eval_record(2));
    rf.append(eval_record(3));
    rf.set_target_reached(2, 128);
    rf.set_status(RunStatus::Completed, 3);
  }
  EXPECT_EQ(read_run_status(path), RunStatus::Completed);
  RunFileSummary s = read_run_summary(path);
  EXPECT_EQ(s.status, RunStatus::Completed);
  EXPECT_EQ(s.steps, 3);
  EXPECT_EQ(s.target_step, 2);
  EXPECT_EQ(s.val_acc, (std::vector<double>{eval_record(2).val_acc, eval_record(3).val_acc}));
  EXPECT_EQ(s.final_train_acc, eval_record(3).train_acc);
  EXPECT_EQ(s.wall_s, step_record(3).wall_s);
}

TEST(RunFile, SummaryOfARunWithoutRowsIsNaN) {
  TempFolder dir;
  const std::string path = dir.path + "/empty.h5";
  { RunFile rf(path, header(), 1.0); }
  RunFileSummary s = read_run_summary(path);
  EXPECT_EQ(s.status, RunStatus::Running);
  EXPECT_EQ(s.steps, 0);
  EXPECT_EQ(s.target_step, -1);
  ASSERT_EQ(s.val_acc.size(), 1u) << "one NaN, so back() is safe";
  EXPECT_TRUE(std::isnan(s.val_acc[0]));
  EXPECT_TRUE(std::isnan(s.final_train_acc));
  EXPECT_TRUE(std::isnan(s.wall_s));
}

TEST(RunFile, UnreadableRunFileIsALibraryErrorNamingIt) {
  H5E_auto2_t func = nullptr;
  void* data = nullptr;
  H5Eget_auto2(H5E_DEFAULT, &func, &data);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  TempFolder dir;
  const std::string path = dir.path + "/not-there.h5";
  try {
    read_run_summary(path);
    ADD_FAILURE() << "no error";
  } catch (const LibraryError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_run_status(path), LibraryError);
  // A file that is HDF5 but not a run file: the missing dataset and the file.
  hid_t f = H5Fcreate((dir.path + "/other.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  H5Fclose(f);
  try {
    read_run_status(dir.path + "/other.h5");
    ADD_FAILURE() << "no error";
  } catch (const LibraryError& e) {
    EXPECT_NE(std::string(e.what()).find("other.h5"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("/status/code"), std::string::npos) << e.what();
  }
  H5Eset_auto2(H5E_DEFAULT, func, data);
}

// ------------------------------------------------------------ the column table

TEST(RunFileColumns, WidthsFollowTheSymbols) {
  const ColumnDims d{2, 4, 3};  // n = 2, m = 2, L = 3
  auto width = [&](const char* path) {
    for (const auto& c : run_file_columns())
      if (c.path() == path) return column_width(c, d);
    ADD_FAILURE() << "no column " << path;
    return int64_t{-1};
  };
  EXPECT_EQ(width("/train/step"), 0);
  EXPECT_EQ(width("/train/loss_rank"), 2);
  EXPECT_EQ(width("/gns/sqnorm_local"), 2);
  EXPECT_EQ(width("/gns/sqnorm_micro"), 4);
  EXPECT_EQ(width("/gns/sqnorm_layer_micro"), 12);
  EXPECT_EQ(width("/gns/sqnorm_layer_global"), 3);
  EXPECT_EQ(width("/eval/val_acc"), 0);
  EXPECT_EQ(width("/layout/batch_micro"), 4);
  EXPECT_EQ(width("/layout/global_batch"), 0);
}

// Each entry is usable as the code walks it: a unique path, in a known group,
// groups contiguous and in creation order, and the one filler its rows need.
TEST(RunFileColumns, TableIsWellFormed) {
  std::vector<std::string> groups;
  for (const auto& g : run_file_groups()) groups.push_back(g.name);
  std::set<std::string> paths;
  size_t group_at = 0;
  for (const auto& c : run_file_columns()) {
    SCOPED_TRACE(c.path());
    EXPECT_TRUE(paths.insert(c.path()).second) << "duplicate";
    while (group_at < groups.size() && groups[group_at] != c.group) ++group_at;
    ASSERT_LT(group_at, groups.size()) << "group unknown or out of order";
    EXPECT_EQ(c.from_header != nullptr, c.rows == ColumnRows::Header);
    EXPECT_EQ(c.from_step != nullptr, c.rows == ColumnRows::Step);
    EXPECT_EQ(c.from_eval != nullptr, c.rows == ColumnRows::Eval);
    EXPECT_TRUE(c.type != ColumnType::Str || c.rows == ColumnRows::Header) << "strings only in the header";
    EXPECT_TRUE(!c.per_layer || c.rows == ColumnRows::Step);
    EXPECT_TRUE(c.doc && *c.doc);
  }
  EXPECT_EQ(paths.size(), 42u);
}

// eval.sharpness's subset is written with the header; /final/params stays
// empty until the run completes, then holds the parameters as given.
TEST(RunFile, SharpnessSubsetAndFinalParams) {
  TempFolder dir;
  const std::string path = dir.path + "/s.h5";
  {
    RunFileHeader h = header();
    h.sharpness_subset = {5, 3, 9};
    RunFile rf(path, h, 1.0);
    EvalRecord e = eval_record(0);
    e.sharpness = 12.5;
    e.sharpness_iterations = 7;
    e.sharpness_residual = 1e-3;
    rf.append(e);
    rf.write_final_params({1.5f, -2.f, 3.f});
  }
  File f(path);
  EXPECT_EQ(read_all<int64_t>(f.id, "/layout/sharpness_subset"), (std::vector<int64_t>{5, 3, 9}));
  EXPECT_EQ(read_all<float>(f.id, "/final/params"), (std::vector<float>{1.5f, -2.f, 3.f}));
  EXPECT_EQ(read_all<double>(f.id, "/eval/sharpness"), (std::vector<double>{12.5}));
  EXPECT_EQ(read_all<int32_t>(f.id, "/eval/sharpness_iterations"), (std::vector<int32_t>{7}));
}

// The file holds exactly the table's datasets, each with the table's shape.
void expect_file_matches_table(const std::string& path, bool per_layer, hsize_t T, hsize_t E) {
  const std::map<std::string, hsize_t> size = {{"T", T}, {"E", E},    {"1", 1}, {"n", 2}, {"K", 4},
                                               {"L", 3}, {"K*L", 12}, {"S", 0}, {"P", 0}};
  File f(path);
  ASSERT_GE(f.id, 0);
  std::set<std::string> want_groups;
  for (const auto& g : run_file_groups()) want_groups.insert(g.name);
  EXPECT_EQ(links_in(f.id, "/"), want_groups);
  std::map<std::string, std::set<std::string>> want;
  for (const auto& c : run_file_columns()) {
    if (!column_present(c, per_layer)) continue;
    want[c.group].insert(c.name);
    std::vector<hsize_t> dims;
    for (const auto& s : column_shape(c)) dims.push_back(size.at(s));
    EXPECT_EQ(dims_of(f.id, c.path().c_str()), dims) << c.path();
  }
  for (const auto& g : want_groups) EXPECT_EQ(links_in(f.id, "/" + g), want[g]) << "/" << g;
}

RunFileHeader micro_layer_header(bool per_layer) {
  RunFileHeader h = header();
  h.batch_micro = {8, 8, 24, 24};  // m = 2
  h.layers = {"fc.weight", "fc.bias", "out.weight"};
  h.layer_numel = {100, 10, 30};
  h.per_layer = per_layer;
  return h;
}

StepRecord layer_record(int64_t step, bool per_layer) {
  StepRecord r = step_record(step);
  r.sqnorm_micro = {1.f, 2.f, 3.f, 4.f};
  if (per_layer) {
    r.layer_micro.assign(12, 0.5f * static_cast<float>(step));
    r.layer_global = {1.f, 2.f, 3.f};
  }
  return r;
}

TEST(RunFileColumns, FileHasTheTableDatasetsPerLayerOnlyWhenAsked) {
  for (bool per_layer : {true, false}) {
    SCOPED_TRACE(per_layer ? "per_layer" : "no per_layer");
    TempFolder dir;
    const std::string path = dir.path + "/t.h5";
    {
      RunFile rf(path, micro_layer_header(per_layer), 1.0);
      rf.append(std::vector<StepRecord>{layer_record(1, per_layer), layer_record(2, per_layer)});
      rf.append(eval_record(2));
    }
    expect_file_matches_table(path, per_layer, 2, 1);
  }
}

TEST(RunFileColumns, LayerValuesWithoutPerLayerAreRefused) {
  TempFolder dir;
  RunFile rf(dir.path + "/l.h5", micro_layer_header(false), 1.0);
  EXPECT_THROW(rf.append(std::vector<StepRecord>{layer_record(1, true)}), std::invalid_argument);
}

// ------------------------------------------------------------ resume

void write_run(const std::string& path, int64_t steps, bool per_layer) {
  RunFile rf(path, micro_layer_header(per_layer), 1.0);
  for (int64_t s = 1; s <= steps; ++s) {
    rf.append(std::vector<StepRecord>{layer_record(s, per_layer)});
    if (s % 2 == 0) rf.append(eval_record(s));
  }
}

TEST(RunFileResume, CutsEveryColumnBackToTheCheckpoint) {
  TempFolder dir;
  const std::string path = dir.path + "/r.h5";
  write_run(path, 6, true);  // 6 steps, 3 evaluations
  {
    auto rf = RunFile::resume(path, micro_layer_header(true), 1.0, 4, 2, 2, 128);
    EXPECT_EQ(rf->path(), path);
  }
  EXPECT_FALSE(std::filesystem::exists(path + ".resume.tmp"));
  expect_file_matches_table(path, true, 4, 2);
  File f(path);
  EXPECT_EQ(read_all<int64_t>(f.id, "/train/step"), (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(read_all<int64_t>(f.id, "/eval/step"), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(read_all<float>(f.id, "/gns/sqnorm_layer_micro")[3 * 12], 2.f);  // step 4's values
  EXPECT_EQ(read_all<int32_t>(f.id, "/status/code"), (std::vector<int32_t>{0}));
  EXPECT_EQ(read_all<int64_t>(f.id, "/status/step"), (std::vector<int64_t>{4}));
  EXPECT_EQ(read_all<int64_t>(f.id, "/target/step"), (std::vector<int64_t>{2}));
  EXPECT_EQ(read_all<int64_t>(f.id, "/target/samples"), (std::vector<int64_t>{128}));
}

TEST(RunFileResume, ATraceShorterThanItsCheckpointIsACheckpointError) {
  TempFolder dir;
  const std::string path = dir.path + "/short.h5";
  write_run(path, 3, false);
  try {
    RunFile::resume(path, micro_layer_header(false), 1.0, 5, 1, -1, -1);
    ADD_FAILURE() << "no error";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("/train/step has 3 rows, but the checkpoint is at 5"), std::string::npos)
        << e.what();
  }
  File f(path);  // the old file is left as it was
  EXPECT_EQ(read_all<int64_t>(f.id, "/train/step"), (std::vector<int64_t>{1, 2, 3}));
}

}  // namespace
}  // namespace bs
