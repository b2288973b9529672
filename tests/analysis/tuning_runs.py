"""In-memory runs of a learning-rate x batch sweep with known truth, for the tuning tests.

The Run objects are what load.load_run returns for such files (the fields
tuning.py and generalization.py read: attrs, status, eval, target), built
without HDF5 so that a coverage test can draw a hundred studies quickly.
File round trips are covered by the tests that use synthetic_runs.py.

Truth: at epoch e a run of (batch B, base lr) has validation accuracy

    acc(B, lr, e) = peak(B) - CURVATURE * log10(lr / best_lr(B))^2 - RISE * exp(-e)

with best_lr(B) = BEST_LR_AT_64 * sqrt(B / 64), plus a per-seed offset
N(0, seed_sd) held over the run and per-evaluation noise N(0, eval_sd).
The training accuracy is acc + gap(B) * e / EPOCHS, gap(B) = GAP_AT_32 +
GAP_PER_DOUBLING * log2(B / 32) (the gap at the last epoch grows by
GAP_PER_DOUBLING per doubling of the batch), plus its own seed offset and
evaluation noise of half the validation ones' sd.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from batchscope_analysis.load import Run, Status, StoredTarget

EPOCHS: int = 4
EVALS_PER_EPOCH: int = 4
TRAIN_SIZE: int = 4096
BEST_LR_AT_64: float = 0.1
CURVATURE: float = 0.08
RISE: float = 0.3
GAP_AT_32: float = 0.02
GAP_PER_DOUBLING: float = 0.01
CHANCE: float = 0.1

Peak = Callable[[int], float]


def default_peak(batch: int) -> float:
    """0.90 at B=64, 0.5 points less per doubling away from it."""
    return 0.90 - 0.005 * abs(math.log2(batch / 64))


def best_lr(batch: int) -> float:
    return BEST_LR_AT_64 * math.sqrt(batch / 64)


def acc_truth(batch: int, lr: float, epoch: float, peak: Peak = default_peak) -> float:
    return peak(batch) - CURVATURE * math.log10(lr / best_lr(batch)) ** 2 - RISE * math.exp(-epoch)


def gap_truth(batch: int, epoch: float) -> float:
    return (GAP_AT_32 + GAP_PER_DOUBLING * math.log2(batch / 32)) * epoch / EPOCHS


def make_run(
    batch: int,
    lr: float,
    seed: int,
    *,
    rng: Optional[np.random.Generator] = None,
    seed_sd: float = 0.0,
    eval_sd: float = 0.0,
    status: str = "completed",
    target: Optional[tuple[str, float]] = None,
    target_stop: bool = False,
    peak: Peak = default_peak,
    epochs: int = EPOCHS,
) -> Run:
    """One run; with target_stop it ends at the first evaluation reaching `target` (val_acc only).
    A diverged run ends after its first evaluations at chance accuracy; status "stalled" is a
    completed run that stays at chance accuracy throughout (diverged without a non-finite loss)."""
    steps_per_epoch = TRAIN_SIZE // batch
    every = max(1, steps_per_epoch // EVALS_PER_EPOCH)
    steps = np.arange(0, epochs * steps_per_epoch + 1, every)
    epoch = steps * batch / TRAIN_SIZE
    offset = rng.normal(0.0, seed_sd) if rng is not None and seed_sd > 0 else 0.0
    noise = rng.normal(0.0, eval_sd, steps.size) if rng is not None and eval_sd > 0 else np.zeros(steps.size)
    val = np.array([acc_truth(batch, lr, e, peak) for e in epoch]) + offset + noise
    # The training accuracy has its own seed offset and evaluation noise, half as large.
    train_offset = rng.normal(0.0, seed_sd / 2) if rng is not None and seed_sd > 0 else 0.0
    train_noise = rng.normal(0.0, eval_sd / 2, steps.size) if rng is not None and eval_sd > 0 else 0.0
    train = val + np.array([gap_truth(batch, e) for e in epoch]) + train_offset + train_noise
    stored = StoredTarget(-1, -1)
    if status == "stalled":
        val, train = np.full(steps.size, CHANCE), np.full(steps.size, CHANCE + 0.001)
        status = "completed"
    elif status == "diverged":
        keep = min(3, steps.size)
        steps, epoch, val, train = steps[:keep], epoch[:keep], np.full(keep, CHANCE), np.full(keep, CHANCE)
    elif target is not None:
        assert target[0] == "val_acc", "this builder knows val_acc targets"
        hits = np.flatnonzero(val >= target[1])
        if hits.size:
            stored = StoredTarget(int(steps[hits[0]]), int(steps[hits[0]]) * batch)
            if target_stop:
                end = hits[0] + 1
                steps, epoch, val, train = steps[:end], epoch[:end], val[:end], train[:end]
    evals = pd.DataFrame({
        "step": steps.astype(np.int64), "samples": (steps * batch).astype(np.int64), "epoch": epoch,
        "val_loss": 2.5 - 2.0 * val, "val_acc": val, "train_loss": 2.5 - 2.0 * train, "train_acc": train,
    })
    name = f"b{batch}-lr{lr:g}-s{seed}"
    attrs = {
        "run": name, "study": "tuning", "global_batch": batch, "ranks": 1, "base_lr": float(lr),
        "peak_lr": float(lr), "seed": seed, "microbatches": 1, "model_loss": "cross_entropy",
        "target_metric": target[0] if target else "none",
        "target_value": float(target[1]) if target else float("nan"),
        "target_stop": 1 if target_stop else 0,
    }
    last = int(steps[-1]) if steps.size else 0
    return Run(path=Path(f"{name}.h5"), attrs=attrs, layout={"train_size": TRAIN_SIZE}, status=Status(status, last),
               train=pd.DataFrame(), gns=pd.DataFrame(), eval=evals, target=stored)


def sweep(
    grid: Mapping[int, Sequence[float]],
    seeds: int,
    *,
    rng: Optional[np.random.Generator] = None,
    seed_sd: float = 0.0,
    eval_sd: float = 0.0,
    diverged: Sequence[tuple[int, float, int]] = (),
    stalled: Sequence[tuple[int, float, int]] = (),
    peak: Peak = default_peak,
    target: Optional[tuple[str, float]] = None,
    target_stop: bool = False,
) -> list[Run]:
    """Every (batch, lr in grid[batch], seed); (batch, lr, seed) in `diverged` diverge, in `stalled` stall."""
    out = []
    for batch, lrs in grid.items():
        for lr in lrs:
            for s in range(seeds):
                status = "diverged" if (batch, lr, s) in diverged else "completed"
                status = "stalled" if (batch, lr, s) in stalled else status
                out.append(make_run(batch, lr, s, rng=rng, seed_sd=seed_sd, eval_sd=eval_sd, status=status,
                                    peak=peak, target=target, target_stop=target_stop))
    return out


def true_best(grid: Mapping[int, Sequence[float]], epoch: float = EPOCHS,
              peak: Peak = default_peak) -> dict[int, tuple[float, float]]:
    """batch -> (best lr on the grid, its true accuracy at `epoch`)."""
    out = {}
    for batch, lrs in grid.items():
        lr = max(lrs, key=lambda x: acc_truth(batch, x, epoch, peak))
        out[batch] = (lr, acc_truth(batch, lr, epoch, peak))
    return out
