#pragma once
// Provenance: what a run file's header records of the study, the run, the
// group that trained it and the libraries that built and ran batchscope.
#include <cstdint>
#include <string>
#include <vector>

#include "comm/mpi_env.h"
#include "config/study.h"
#include "placement/device_plan.h"
#include "placement/layout.h"
#include "trace/run_file.h"
#include "train/trainer.h"

namespace bs {

// Who trains a group's runs, in group rank order.
struct GroupPlacement {
  std::vector<int32_t> world_ranks;
  std::vector<std::string> hosts;
  std::vector<std::string> devices;  // DevicePlan labels
};

// Collective over the group (gathers the host names).
GroupPlacement group_placement(const GroupPlan& group, const DevicePlan& devices, const MpiEnv& env,
                               MpiCommunicator& comm);

// `comm`: the backend the trainer reduces with ("mpi", "nccl", ...).
RunFileHeader make_header(const Study& study, const RunSpec& run, const RunBudget& budget,
                          const GroupPlacement& placement, const std::string& comm, const Trainer& trainer);

}  // namespace bs
