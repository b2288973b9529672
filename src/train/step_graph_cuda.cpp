#include <string>

#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>

#include "gpu/cuda_runtime.h"
#include "train/step_graph.h"
#include "util/errors.h"

namespace bs {
namespace {

class CudaStepGraph final : public StepGraph {
 public:
  void replay() override { graph.replay(); }
  at::cuda::CUDAGraph graph;
};

}  // namespace

bool step_graphs_built() { return true; }

std::unique_ptr<StepGraph> capture_step_graph(int device, const std::function<void()>& warmup,
                                              const std::function<void()>& body) {
  const auto dev = static_cast<c10::DeviceIndex>(device);
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, dev);
  // Pool streams do not synchronize with the legacy default stream (where
  // the batch indices and the zeroed statistics were just queued), so events
  // order them: the side stream after the default one here, and the default
  // one after the warm-up below. The capture itself runs nothing.
  gpu::Event queued, warmed;
  queued.record(nullptr);
  queued.make_wait(side.stream());
  auto g = std::make_unique<CudaStepGraph>();
  try {
    const c10::cuda::CUDAStreamGuard on_side(side);
    if (warmup) warmup();
    g->graph.capture_begin();
    body();
    g->graph.capture_end();
  } catch (const c10::Error& e) {
    throw LibraryError("CUDA graphs: capturing a training step on GPU " + std::to_string(device) +
                       " failed: " + e.what_without_backtrace() + "; set gpu.graphs: off to train eagerly");
  }
  warmed.record(side.stream());
  warmed.make_wait(nullptr);
  return g;
}

}  // namespace bs
