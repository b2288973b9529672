#pragma once
// Learning rate at a step: linear warmup to the batch-scaled peak, then
// constant or cosine decay to zero at the end of the budget.
#include <cstdint>

#include "config/study.h"

namespace bs {

// step0 is 0-based.
double lr_at(int64_t step0, const RunBudget& budget, const OptimizerSpec& opt);

}  // namespace bs
