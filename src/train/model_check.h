#pragma once
// The model against the data before training (`batchscope check`, and every
// rank of `batchscope run` before anything is written): one forward pass on
// two training samples on the CPU. Torch-free interface.
#include <string>

#include "config/study.h"
#include "data/dataset.h"

namespace bs {

// Lines describing the data, the model and its output for two samples.
// Throws DataError (a file that cannot be read, an output that does not fit
// the loss and labels, a forward pass that throws) or ConfigError (a loss
// that does not fit the targets, a shape the built-in cnn cannot take).
std::string check_model(const Study& st, const DataSplits& data);

}  // namespace bs
