#pragma once
// Where each rank trains and how its group reduces: a pure function of the
// study, the layout and what every rank reported about its node, so it can be
// unit-tested without GPUs and every rank reaches the same decision.
#include <string>
#include <vector>

#include "config/study.h"
#include "placement/layout.h"

namespace bs {

// What one rank sees, gathered from every rank before training.
struct RankDevice {
  std::string host;
  int local_rank = 0;              // among the ranks of its node (MPI_COMM_TYPE_SHARED)
  int gpus = 0;                    // CUDA devices this rank can train on (LibTorch and batchscope both see them)
  std::string no_gpu_reason;       // why gpus is 0, for the error message
  std::string gpu_name, gpu_uuid;  // of device gpu_for_local_rank(); empty without GPUs

  std::string serialize() const;
  static RankDevice parse(const std::string& text);
};

// One GPU per node-local rank, wrapping around when ranks outnumber GPUs.
int gpu_for_local_rank(int local_rank, int gpus);

struct DevicePlan {
  bool cuda = false;
  std::string comm = "mpi";        // "mpi" or "nccl", for every group
  std::vector<int> gpu;            // per world rank: CUDA device, -1 on the CPU
  std::vector<std::string> label;  // per world rank: "cpu" or "cuda:K NAME UUID"
  std::string summary;             // one line for the console
  bool graphs = false;             // replay steps from CUDA graphs (gpu.graphs, plan_graphs)
};

// device: auto picks CUDA when every rank sees a GPU, else the CPU.
// comm: auto picks NCCL only on CUDA, with NCCL built, and when no replica
// group has two ranks on one GPU (NCCL refuses that); otherwise MPI, staged
// through host memory for CUDA buffers. Contradictions (comm: nccl on the CPU
// or with shared GPUs, device: cuda without GPUs) throw ConfigError naming
// the key and what to change.
DevicePlan plan_devices(const Study& study, const Layout& layout, const std::vector<RankDevice>& ranks,
                        bool nccl_built);

// The replica groups on each GPU, in the order the GPUs first appear: `rank_gpu`
// names each world rank's GPU ("" for none: the CPU, an idle rank), the same
// name for ranks on one GPU. Groups sharing a GPU train at once, each with its
// own CUDA context (and stream); a run's numbers do not depend on it.
struct GpuShare {
  std::string gpu;
  std::vector<int> groups;
};
std::vector<GpuShare> gpu_sharing(const Layout& layout, const std::vector<std::string>& rank_gpu);
// For `plan --gpus G`: world ranks filling hosts in order, `ranks_per_host`
// each (mpirun's default by-slot mapping), each on gpu_for_local_rank(local
// rank, G): names "host H cuda:K".
std::vector<std::string> planned_rank_gpus(int world, int ranks_per_host, int gpus);

// gpu.graphs: on needs CUDA, a LibTorch that captures graphs and a built-in
// model (a TorchScript module may branch on the host or draw random numbers,
// which a graph would replay frozen); auto takes graphs where those hold,
// off never. Sets p.graphs and, on CUDA, says why in p.summary. gpu.graphs:
// on where they do not hold throws ConfigError naming the key.
void plan_graphs(const Study& study, bool graphs_built, DevicePlan& p);

}  // namespace bs
