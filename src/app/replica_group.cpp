#include "app/replica_group.h"

#include <algorithm>

#include "app/device_select.h"

namespace bs {
namespace {

TrainerOptions trainer_options(const DevicePlan& devices, int world_rank) {
  TrainerOptions o;
  o.gpu = devices.gpu[static_cast<size_t>(world_rank)];
  o.graphs = devices.graphs;
  o.keep_final_params = true;  // the leader writes them to /final/params
  return o;
}

}  // namespace

ReplicaGroup::ReplicaGroup(const Study& study, const DevicePlan& devices, int world_rank,
                           std::unique_ptr<MpiCommunicator> group, DataSplits data_splits, TrainerOptions options)
    : mpi(std::move(group)),
      device_comm(make_device_comm(study, devices, world_rank, *mpi)),
      comm(device_comm ? *device_comm : static_cast<Communicator&>(*mpi)),
      data(std::move(data_splits)),
      trainer(study, data, comm, options) {}

std::unique_ptr<ReplicaGroup> make_group(const Study& study, const DevicePlan& devices, const MpiEnv& env, int color,
                                         DataSplits data) {
  auto group = env.split(color, env.rank());
  if (!group) return nullptr;
  return std::make_unique<ReplicaGroup>(study, devices, env.rank(), std::move(group), std::move(data),
                                        trainer_options(devices, env.rank()));
}

// The cores this rank may use (a binding or cpuset, not the whole machine's)
// shared by the ranks on its node (every rank of the job there, whatever its
// group): never more threads than cores, which would have threads of one rank
// wait for each other on a shared core. A rank bound to fewer cores than its
// share gets fewer threads, never more.
int threads_per_rank(int requested, const MpiEnv& env) {
  if (requested > 0) return requested;
  return std::max(1, usable_cores() / std::max(1, env.local_size()));
}

}  // namespace bs
