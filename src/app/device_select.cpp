#include "app/device_select.h"

#include <algorithm>

#include "comm/host_staged_communicator.h"
#include "comm/nccl_communicator.h"
#include "gpu/cuda_runtime.h"
#include "train/step_graph.h"
#include "train/torch_env.h"

namespace bs {
namespace {

RankDevice local_device(const MpiEnv& env) {
  RankDevice d;
  d.host = env.host();
  d.local_rank = env.local_rank();
  const int runtime = gpu::device_count();
  const int torch = torch_cuda_devices();
  if (!gpu::built_with_cuda()) {
    d.no_gpu_reason = "batchscope was built without the CUDA toolkit";
  } else if (runtime == 0) {
    d.no_gpu_reason = "the CUDA runtime sees no device: no GPU or driver, or CUDA_VISIBLE_DEVICES hides them";
  } else if (torch == 0) {
    d.no_gpu_reason =
        "the CUDA runtime sees " + std::to_string(runtime) + " GPU(s), but this LibTorch was built without CUDA";
  } else {
    // Never throws: one rank failing here alone would leave the others
    // waiting in the allgather that follows.
    try {
      const int gpus = std::min(runtime, torch);
      gpu::DeviceInfo info = gpu::device_info(gpu_for_local_rank(d.local_rank, gpus));
      d.gpus = gpus;
      d.gpu_name = info.name;
      d.gpu_uuid = info.uuid;
    } catch (const std::exception& e) {
      d.no_gpu_reason = e.what();
    }
  }
  return d;
}

}  // namespace

DevicePlan select_devices(const Study& study, const Layout& layout, const MpiEnv& env) {
  std::vector<RankDevice> ranks;
  for (const auto& text : env.allgather(local_device(env).serialize(), MPI_COMM_WORLD))
    ranks.push_back(RankDevice::parse(text));
  DevicePlan plan = plan_devices(study, layout, ranks, nccl_built());
  plan_graphs(study, step_graphs_built(), plan);
  return plan;
}

std::unique_ptr<Communicator> make_device_comm(const Study& study, const DevicePlan& devices, int world_rank,
                                               MpiCommunicator& group) {
  const int gpu = devices.gpu[static_cast<size_t>(world_rank)];
  if (gpu < 0) return nullptr;
  gpu::set_device(gpu);
  if (devices.comm == "nccl") {
    NcclOptions o;
    o.device = gpu;
    o.timeout_s = study.comm_timeout_s;
    return make_nccl_communicator(group.comm(), o);
  }
  return std::make_unique<HostStagedCommunicator>(group);
}

}  // namespace bs
