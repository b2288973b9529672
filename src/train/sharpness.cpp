#include "train/sharpness.h"

#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>

namespace bs {
namespace {

double dot64(const at::Tensor& a, const at::Tensor& b) {
  return at::dot(a.to(at::kDouble), b.to(at::kDouble)).item<double>();
}

double norm64(const at::Tensor& a) { return std::sqrt(dot64(a, a)); }

// |hv - lambda v| / |lambda v| for a unit v.
double residual_of(const at::Tensor& hv, const at::Tensor& v, double lambda) {
  const at::Tensor r = hv.to(at::kDouble) - v.to(at::kDouble) * lambda;
  return at::norm(r).item<double>() / std::abs(lambda);
}

// One chunk's contribution to H v: grad of <grad(weight * loss), v>.
at::Tensor chunk_hvp(const Model& model, const Objective& objective, const at::Tensor& params, const at::Tensor& x,
                     const at::Tensor& y, double weight, const at::Tensor& v) {
  const std::vector<at::Tensor> w = model.views(params);
  const at::Tensor loss = objective.mean_loss(model.forward(w, x), y) * weight;
  const std::vector<at::Tensor> g = torch::autograd::grad({loss}, w, {}, true, true);
  const std::vector<at::Tensor> vs = model.views(v);
  at::Tensor gv = at::zeros({}, loss.options());
  for (size_t k = 0; k < g.size(); ++k) gv = gv + (g[k] * vs[k]).sum();
  const std::vector<at::Tensor> h = torch::autograd::grad({gv}, w, {}, false, false, true);
  std::vector<at::Tensor> flat;
  for (size_t k = 0; k < h.size(); ++k)
    flat.push_back(h[k].defined() ? h[k].reshape({-1}) : at::zeros_like(vs[k]).reshape({-1}));
  return at::cat(flat).detach();
}

}  // namespace

SharpnessResult top_eigenvalue(const HessianProduct& hvp, const at::Tensor& v0, const SharpnessSpec& spec) {
  SharpnessResult r;
  at::Tensor v = v0 / norm64(v0);
  double previous = std::nan("");
  for (int64_t it = 1; it <= spec.iterations; ++it) {
    const at::Tensor hv = hvp(v);
    const double lambda = dot64(v, hv);
    r.value = lambda;
    r.iterations = static_cast<int32_t>(it);
    r.residual = residual_of(hv, v, lambda);
    const double hv_norm = norm64(hv);
    if (hv_norm == 0 || !std::isfinite(hv_norm)) break;
    if (std::abs(lambda - previous) <= spec.tolerance * std::abs(lambda)) break;
    previous = lambda;
    v = hv / hv_norm;
  }
  return r;
}

at::Tensor sharpness_start(int64_t size, uint64_t seed, const at::Device& device) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn({size}, gen, at::TensorOptions().dtype(at::kFloat)).to(device);
}

at::Tensor shard_hvp(const Model& model, const Objective& objective, const at::Tensor& params, const DeviceSplit& split,
                     const at::Tensor& idx, int64_t subset_size, int64_t chunk, const at::Tensor& v) {
  at::Tensor out = at::zeros_like(v);
  const int64_t n = idx.size(0);
  for (int64_t b = 0; b < n; b += chunk) {
    const int64_t len = std::min(chunk, n - b);
    const at::Tensor sel = idx.narrow(0, b, len);
    const double weight = static_cast<double>(len) / static_cast<double>(subset_size);
    out.add_(chunk_hvp(model, objective, params, split.inputs(sel), split.targets(sel), weight, v));
  }
  return out;
}

}  // namespace bs
