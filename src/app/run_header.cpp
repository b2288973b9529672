#include "app/run_header.h"

#include <cmath>
#include <ctime>

#include <mpi.h>

#include "comm/nccl_communicator.h"
#include "data/batch_plan.h"
#include "gpu/cuda_runtime.h"
#include "train/torch_env.h"
#include "util/blas_info.h"
#include "util/build_info.h"
#include "util/check.h"

namespace bs {
namespace {

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// The library's first line ("Open MPI v4.1.4"); the rest is build detail.
std::string mpi_version() {
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  BS_MPI_CHECK(MPI_Get_library_version(v, &len));
  std::string s(v, static_cast<size_t>(len));
  auto nl = s.find_first_of(",\n");
  return nl == std::string::npos ? s : s.substr(0, nl);
}

// "a,b,c"; "" for none.
std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ",") + n;
  return s;
}

}  // namespace

GroupPlacement group_placement(const GroupPlan& group, const DevicePlan& devices, const MpiEnv& env,
                               MpiCommunicator& comm) {
  GroupPlacement p;
  for (int i = 0; i < group.size; ++i) p.world_ranks.push_back(group.first_rank + i);
  p.hosts = env.allgather(env.host(), comm.comm());
  for (int32_t w : p.world_ranks) p.devices.push_back(devices.label[static_cast<size_t>(w)]);
  return p;
}

namespace {

// Names and versions: the study, the run, the libraries, the model.
std::vector<std::pair<std::string, std::string>> str_attrs(const Study& st, const RunSpec& r,
                                                           const std::vector<std::string>& devices,
                                                           const std::string& comm, const Trainer& trainer) {
  return {{"study", st.name},
          {"run", r.name},
          {"created", utc_now()},
          {"git_revision", build::kGitRevision},
          {"version_batchscope", build::kVersion},
          {"version_torch", torch_version()},
          {"version_mpi", mpi_version()},
          {"version_hdf5", hdf5_version()},
          {"version_nccl", nccl_version()},
          {"version_cuda", gpu::runtime_version()},
          {"blas", loaded_blas().description},
          {"study_yaml", st.resolved_yaml},
          {"run_yaml", run_yaml(st, r)},
          {"model", st.model.name},
          {"model_loss", st.model.loss},
          {"model_init", trainer.init_source()},
          {"model_buffers", joined(trainer.buffer_names())},
          {"optimizer", st.optimizer.name},
          {"dataset", st.data.name},
          {"comm", comm},
          {"device", devices.empty() || devices[0] == "cpu" ? "cpu" : "cuda"},
          {"target_metric", st.target.metric}};
}

}  // namespace

RunFileHeader make_header(const Study& st, const RunSpec& r, const RunBudget& rb, const GroupPlacement& placement,
                          const std::string& comm, const Trainer& trainer) {
  const auto& devices = placement.devices;
  RunFileHeader h;
  h.str_attrs = str_attrs(st, r, devices, comm, trainer);
  h.int_attrs = {
      {"seed", static_cast<int64_t>(r.seed)},  {"study_seed", static_cast<int64_t>(st.seed)},
      {"global_batch", r.global_batch()},      {"ranks", r.ranks()},
      {"steps_per_epoch", rb.steps_per_epoch}, {"total_steps", rb.total_steps},
      {"microbatches", st.gns.microbatches},   {"target_stop", st.target.enabled() && st.target.stop ? 1 : 0}};
  h.float_attrs = {{"base_lr", r.lr},
                   {"peak_lr", rb.peak_lr},
                   {"ema_beta", st.gns.step_beta(r.global_batch())},
                   {"ema_samples", st.gns.ema_samples > 0 ? st.gns.ema_samples : std::nan("")},
                   {"beta2", st.optimizer.name == "adam" ? rb.beta2 : std::nan("")},
                   {"target_value", st.target.enabled() ? st.target.value : std::nan("")}};
  h.world_ranks = placement.world_ranks;
  h.hosts = placement.hosts;
  h.devices = devices;
  for (auto b : r.batch_per_rank) h.batch_per_rank.push_back(static_cast<int32_t>(b));
  for (auto b : micro_batches(r.batch_per_rank, st.gns.microbatches)) h.batch_micro.push_back(static_cast<int32_t>(b));
  h.layers = trainer.layer_names();
  for (auto k : trainer.layer_numel()) h.layer_numel.push_back(static_cast<int32_t>(k));
  h.per_layer = st.gns.per_layer;
  h.global_batch = r.global_batch();
  h.train_size = st.data.effective_train_size();
  h.test_size = st.data.effective_test_size();
  h.sharpness_subset = trainer.sharpness_subset();
  return h;
}

}  // namespace bs
