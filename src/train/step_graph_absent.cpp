// A LibTorch without CUDA: nothing to capture (CMake compiles this file in
// place of step_graph_cuda.cpp).
#include "train/step_graph.h"
#include "util/errors.h"

namespace bs {

bool step_graphs_built() { return false; }

std::unique_ptr<StepGraph> capture_step_graph(int, const std::function<void()>&, const std::function<void()>&) {
  throw LibraryError("CUDA graphs: this batchscope's LibTorch has no CUDA; set gpu.graphs: off or auto");
}

}  // namespace bs
