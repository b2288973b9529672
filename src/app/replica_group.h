#pragma once
// One replica group as one of its ranks sees it: its communicators, the data
// and the trainer. Set up alike by `batchscope run` (a group per layout entry)
// and `batchscope bench` (one group of every rank).
#include <memory>

#include "comm/communicator.h"
#include "comm/mpi_env.h"
#include "config/study.h"
#include "data/dataset.h"
#include "placement/device_plan.h"
#include "train/trainer.h"

namespace bs {

struct ReplicaGroup {
  // Collective over the group: the device communicator (NCCL) is created here.
  ReplicaGroup(const Study& study, const DevicePlan& devices, int world_rank, std::unique_ptr<MpiCommunicator> group,
               DataSplits data, TrainerOptions options);
  // The trainer holds references to the communicator and the data: neither
  // copied nor moved.
  ReplicaGroup(const ReplicaGroup&) = delete;
  ReplicaGroup& operator=(const ReplicaGroup&) = delete;

  bool leader() const { return mpi->rank() == 0; }  // owns the run files and reports

  // The group's MPI communicator carries host-side messages (stop votes, the
  // hosts); the trainer's buffers go through `comm`, the backend the device
  // plan chose: `device_comm`, or `mpi` itself when the group trains on CPUs.
  std::unique_ptr<MpiCommunicator> mpi;
  std::unique_ptr<Communicator> device_comm;
  Communicator& comm;
  DataSplits data;
  Trainer trainer;
};

// Collective over the world (MPI_Comm_split by `color`), then over the group.
// Null on a rank that joins no group (color < 0). `data`: the study's data,
// loaded (and checked against the model) before anything was written.
// The trainer computes the noise statistics (bench switches them per run:
// Trainer::set_noise_statistics).
std::unique_ptr<ReplicaGroup> make_group(const Study& study, const DevicePlan& devices, const MpiEnv& env, int color,
                                         DataSplits data);

// LibTorch intra-op threads for this rank: `requested`, or when 0 the cores
// it may run on (usable_cores) divided among the ranks on its node (at least 1).
int threads_per_rank(int requested, const MpiEnv& env);

}  // namespace bs
