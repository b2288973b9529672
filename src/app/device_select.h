#pragma once
// Gathers what every rank can train on, plans devices (placement/device_plan.h),
// and builds the communicator a group's trainer reduces with. Shared by
// `batchscope run` and `batchscope bench`.
#include <memory>

#include "comm/communicator.h"
#include "comm/mpi_env.h"
#include "config/study.h"
#include "placement/device_plan.h"
#include "placement/layout.h"

namespace bs {

// Collective over MPI_COMM_WORLD; throws ConfigError alike on every rank.
DevicePlan select_devices(const Study& study, const Layout& layout, const MpiEnv& env);

// For this rank of a group: NCCL, MPI staged through host memory, or null
// when the group trains on the CPU (then the group's MpiCommunicator serves).
// Collective over the group.
std::unique_ptr<Communicator> make_device_comm(const Study& study, const DevicePlan& devices, int world_rank,
                                               MpiCommunicator& group);

}  // namespace bs
