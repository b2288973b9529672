#!/usr/bin/env python3
"""The kernel floor of a training step: how long the library takes for the
step's convolutions and matrix products alone, each layer timed in isolation.

    tests/bench/floor.py --baseline ../shared/baselines/torch_ddp_baseline.py \
        --model cnn --batch 128 [--threads 1] [--device cpu]

The model is the baseline's own (its make_model(name)). Every layer with
parameters (Linear, Conv2d) is timed alone on an input of the shape it sees in
the step: its forward and its backward (weight and bias gradients, and the
input's gradient where an earlier layer needs it; the first layer's input is
the data, which needs none). The floor is the sum of the layers' median times.

Why: batchscope and the baseline link the same LibTorch and call the same
kernels for these layers, so neither side's step can be faster than this sum
(less what a side computes another way: for a first convolution, which needs no
input gradient, batchscope uses one im2col matrix product on the CPU, so that
layer counts here at the faster of conv2d and im2col). Relu, pooling, the loss,
the reduction and the optimizer come on top, so the floor is a lower bound.
A ratio target below floor / baseline needs kernels faster than the library's.

Under mpirun every rank times the same layers at once (as both sides train,
sharing caches and memory bandwidth); rank 0 prints one JSON line:
{"impl": "floor", "step_ms": ..., "layers": [{"layer", "shape", "how", "ms"}]}.
tests/bench/compare.py --floor runs it in every round beside both sides.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Layer:
    """One layer with parameters, the input shape it sees, and whether the
    step needs that input's gradient."""
    name: str
    module: nn.Module
    shape: tuple[int, ...]
    input_grad: bool


def load_make_model(baseline: str) -> Callable[[str], nn.Module]:
    spec = importlib.util.spec_from_file_location("floor_baseline", baseline)
    if spec is None or spec.loader is None:
        raise SystemExit(f"floor.py: cannot load {baseline} (a torch_ddp_baseline.py)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    make = getattr(module, "make_model", None)
    if make is None:
        raise SystemExit(f"floor.py: {baseline} has no make_model(name)")
    return make


def layers_of(model: nn.Module, sample: torch.Tensor) -> list[Layer]:
    """The layers with parameters in forward order, found by running the
    model once on `sample` (a batch) with hooks that record each one's input."""
    seen: list[Layer] = []
    hooks = []
    for name, m in model.named_modules():
        if any(True for _ in m.parameters(recurse=False)):
            hooks.append(m.register_forward_pre_hook(
                lambda mod, inp, name=name: seen.append(
                    Layer(name, mod, tuple(inp[0].shape), input_grad=len(seen) > 0))))
    with torch.no_grad():
        model(sample)
    for h in hooks:
        h.remove()
    return seen


def im2col_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A stride-1, "same"-padded convolution as batchscope's CPU first layer
    computes it (src/models/model.cpp conv5x5_as_matmul): the patches as a
    strided view of the padded input, copied once, times the weights."""
    kh, kw = conv.kernel_size
    ph, pw = (int(v) for v in conv.padding)
    assert conv.bias is not None
    n, c, h, w = x.shape
    xp = F.pad(x, (pw, pw, ph, ph))
    s = [int(v) for v in xp.stride()]
    cols = xp.as_strided((n, h, w, c, kh, kw), (s[0], s[2], s[3], s[1], s[2], s[3])).reshape(n * h * w, c * kh * kw)
    k = conv.out_channels
    return torch.addmm(conv.bias, cols, conv.weight.view(k, -1).t()).view(n, h, w, k)


def im2col_applies(layer: Layer) -> bool:
    m = layer.module
    return (isinstance(m, nn.Conv2d) and not layer.input_grad and m.stride == (1, 1) and m.groups == 1 and
            m.dilation == (1, 1) and m.bias is not None and
            m.padding == (m.kernel_size[0] // 2, m.kernel_size[1] // 2))


def median_ms(fn: Callable[[], None], reps: int, warmup: int, sync: Callable[[], None]) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def time_layer(layer: Layer, device: torch.device, reps: int, warmup: int,
               how: str = "module") -> float:
    """Median ms of one forward and backward of `layer` alone."""
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(layer.shape, generator=g).to(device).requires_grad_(layer.input_grad)
    module = layer.module

    def forward() -> torch.Tensor:
        return im2col_conv(x, module) if isinstance(module, nn.Conv2d) and how == "im2col" else module(x)

    gy = torch.randn(forward().shape, generator=g).to(device)
    params = list(layer.module.parameters())

    def step() -> None:
        for p in params:
            p.grad = None
        x.grad = None
        forward().backward(gy)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    return median_ms(step, reps, warmup, sync)


def floor(make_model: Callable[[str], nn.Module], model: str, batch: int, device: torch.device, reps: int,
          warmup: int, sample_shape: tuple[int, ...] = (1, 28, 28)) -> dict:
    net = make_model(model).to(device)
    layers = layers_of(net, torch.zeros((batch,) + sample_shape, device=device))
    rows = []
    for layer in layers:
        hows = ["module"] + (["im2col"] if device.type == "cpu" and im2col_applies(layer) else [])
        timed = {how: time_layer(layer, device, reps, warmup, how) for how in hows}
        how = min(timed, key=lambda k: timed[k])
        rows.append({"layer": layer.name, "kind": type(layer.module).__name__, "shape": list(layer.shape),
                     "input_grad": layer.input_grad, "how": how, "ms": timed[how],
                     "ms_by_how": timed})
    return {"impl": "floor", "model": model, "batch_per_rank": batch, "device": device.type,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "reps": reps,
            "step_ms": sum(r["ms"] for r in rows), "layers": rows, "status": "completed"}


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", required=True, help="torch_ddp_baseline.py: its make_model(name) is timed")
    p.add_argument("--model", default="mlp")
    p.add_argument("--batch", type=int, default=128, help="per-rank batch size")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--reps", type=int, default=0, help="timed repetitions per layer (0: by batch)")
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    reps = a.reps or max(5, min(40, 8192 // a.batch))
    torch.manual_seed(0)
    out = floor(load_make_model(a.baseline), a.model, a.batch, torch.device(a.device), reps, a.warmup)
    if os.environ.get("OMPI_COMM_WORLD_RANK", "0") == "0":
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
