#pragma once
// model: {name: torchscript, path: FILE, init: file | seeded}: a module saved
// with torch.jit.save, run as a function of one flat parameter buffer like the
// built-ins: its parameters become views of the buffer, in named_parameters()
// order, so the trainer's one gradient, reduction and optimizer cover it.
#include <memory>
#include <string>

#include "models/model.h"

namespace bs {

// Loads spec.path onto `device`. Throws DataError (naming the file and
// model.path) for a file LibTorch cannot load as TorchScript, for parameters
// that are not float32 or are shared between two names, and for a module
// without parameters; ConfigError (model.init) for init: seeded when a
// parameter belongs to a module type without a known default initialization.
std::unique_ptr<Model> make_torchscript_model(const std::string& study_file, const ModelSpec& spec,
                                              const ModelShape& shape, const at::Device& device);

}  // namespace bs
