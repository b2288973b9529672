#pragma once
// What the app asks of LibTorch itself, outside any training run: the GPUs it
// sees, its version, its thread count. Torch-free header, so device selection
// and provenance need not include the trainer.
#include <string>

namespace bs {

// CUDA devices this process's LibTorch can use (0 for a CPU-only LibTorch).
int torch_cuda_devices();
// LibTorch version string, for provenance.
std::string torch_version();
// Sets LibTorch's intra-op threads for this rank.
void set_torch_threads(int threads);

}  // namespace bs
