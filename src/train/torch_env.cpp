#include "train/torch_env.h"

#include <ATen/Parallel.h>
#include <torch/csrc/api/include/torch/cuda.h>
#include <torch/csrc/api/include/torch/version.h>

namespace bs {

int torch_cuda_devices() { return static_cast<int>(torch::cuda::device_count()); }

std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

void set_torch_threads(int threads) { at::set_num_threads(threads); }

}  // namespace bs
