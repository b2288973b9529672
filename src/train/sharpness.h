#pragma once
// Sharpness (docs/metrics.md): the largest eigenvalue of the Hessian of the
// mean training loss over a fixed subset, by power iteration on
// Hessian-vector products (double backward). Internal to train/: LibTorch
// types, so no header outside train/ includes it.
#include <cstdint>
#include <functional>
#include <limits>

#include <ATen/ATen.h>

#include "config/study.h"
#include "models/model.h"
#include "train/device_data.h"

namespace bs {

struct SharpnessResult {
  double value = std::numeric_limits<double>::quiet_NaN();     // the Rayleigh quotient v'Hv / v'v at the end
  int32_t iterations = 0;                                      // Hessian-vector products taken
  double residual = std::numeric_limits<double>::quiet_NaN();  // |Hv - value v| / |value v|
};

// v -> H v for a flat float vector; in a group, the product already summed
// over the group (every rank gets the same bits, so all stop alike).
using HessianProduct = std::function<at::Tensor(const at::Tensor& v)>;

// Power iteration from v0 (any nonzero vector): at most spec.iterations
// products, stopping early when the estimate changes by at most
// spec.tolerance relative to itself. Dot products in float64. Converges to
// the eigenvalue of largest magnitude (the top one whenever it dominates the
// most negative one, as near a minimum).
SharpnessResult top_eigenvalue(const HessianProduct& hvp, const at::Tensor& v0, const SharpnessSpec& spec);

// The start vector: standard normal, drawn on the CPU from `seed` (so every
// device and rank count starts alike), moved to `device`.
at::Tensor sharpness_start(int64_t size, uint64_t seed, const at::Device& device);

// The part of H v that this rank's samples `idx` of a subset of `subset_size`
// samples contribute: the Hessian of (|idx| / subset_size) * (their mean
// loss), so the sum over a group's disjoint shards is the Hessian of the
// subset's mean loss. Taken with respect to model.views(params), in chunks of
// `chunk` samples; the caller sets the model's mode (evaluation).
at::Tensor shard_hvp(const Model& model, const Objective& objective, const at::Tensor& params, const DeviceSplit& split,
                     const at::Tensor& idx, int64_t subset_size, int64_t chunk, const at::Tensor& v);

}  // namespace bs
