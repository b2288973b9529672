#pragma once
// CUDA graphs of a training step: the step's kernels captured once, then
// replayed with one launch per graph instead of hundreds. Torch-free header:
// LibTorch builds with CUDA compile step_graph_cuda.cpp, the others
// step_graph_absent.cpp (CMake picks), where capturing is a LibraryError.
#include <functional>
#include <memory>

namespace bs {

// Whether this build's LibTorch can capture CUDA graphs.
bool step_graphs_built();

class StepGraph {
 public:
  virtual ~StepGraph() = default;
  // Queues the captured kernels on LibTorch's current stream (the default
  // stream, where the communicators order their work), behind what is queued.
  virtual void replay() = 0;
};

// Captures what `body` queues on `device`. Capture needs a stream other than
// the default one, so it happens on a side stream that first runs `warmup`
// for real (when given): that creates the side stream's cuBLAS and cuDNN
// handles and workspaces, which must not be created inside a capture. The
// side stream is ordered after the default stream's queued work, and the
// default stream after the warm-up. `warmup` must leave the state as `body`
// would overwrite it anyway (it is followed by a replay). A failed capture is
// a LibraryError that says to set gpu.graphs: off.
std::unique_ptr<StepGraph> capture_step_graph(int device, const std::function<void()>& warmup,
                                              const std::function<void()>& body);

}  // namespace bs
