"""Synthetic run files that follow docs/run-file.md exactly, written with h5py.

The curves are closed-form functions of (global batch, seed, samples) so tests
can compute the values the loader should report without reading the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

TRAIN_SIZE: int = 2048
TEST_SIZE: int = 512
REFERENCE_BATCH: int = 32
EMA_BETA: float = 0.9
EVAL_EVERY: int = 10
WARMUP_STEPS: int = 5
STATUS_CODES: dict[str, int] = {"running": 0, "completed": 1, "diverged": 2, "failed": 3, "preempted": 4}


@dataclass(frozen=True)
class RunSpec:
    name: str
    batch_per_rank: tuple[int, ...]
    seed: int
    base_lr: float
    epochs: int = 2
    status: str = "completed"
    # Steps actually written; None = the whole budget.
    steps_written: int | None = None

    @property
    def global_batch(self) -> int:
        return sum(self.batch_per_rank)

    @property
    def ranks(self) -> int:
        return len(self.batch_per_rank)

    @property
    def steps_per_epoch(self) -> int:
        return TRAIN_SIZE // self.global_batch

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def steps(self) -> int:
        return self.total_steps if self.steps_written is None else self.steps_written

    @property
    def peak_lr(self) -> float:
        return self.base_lr * self.global_batch / REFERENCE_BATCH

    def eval_steps(self) -> list[int]:
        steps = list(range(0, self.steps + 1, EVAL_EVERY))
        # The evaluation after the last step exists only once the run has ended.
        if self.status != "running" and steps[-1] != self.steps:
            steps.append(self.steps)
        return steps


# 3 global batches x 2 seeds, 1 and 2 ranks (one uneven split), plus a live run.
STUDY_SPECS: tuple[RunSpec, ...] = tuple(
    RunSpec(f"b{sum(split)}-s{seed}", split, seed, 0.1)
    for split in ((32,), (32, 32), (48, 80))
    for seed in (0, 1)
) + (RunSpec("b64-s2-live", (32, 32), 2, 0.05, status="running", steps_written=23),)


def wall_s(spec: RunSpec, step: np.ndarray) -> np.ndarray:
    return step * 0.01 * math.sqrt(spec.global_batch / REFERENCE_BATCH)


def train_loss_curve(spec: RunSpec, samples: np.ndarray) -> np.ndarray:
    return 0.3 + 2.0 * np.exp(-samples / 1500.0) + 0.01 * spec.seed + 0.02 * np.sin(samples / 97.0)


def val_acc(spec: RunSpec, samples: np.ndarray) -> np.ndarray:
    """Accuracy rises with samples, is lower at large batch, and for the
    smallest batch peaks before the end (so best != final there)."""
    samples = np.asarray(samples, dtype=float)
    acc = 0.6 + 0.3 * (1.0 - np.exp(-samples / 1000.0)) - 0.03 * math.log2(spec.global_batch / 32) + 0.005 * spec.seed
    if spec.global_batch == 32:
        acc = acc - 0.2 * np.maximum(0.0, samples - 3500.0) / TRAIN_SIZE
    return acc


def train_acc(spec: RunSpec, samples: np.ndarray) -> np.ndarray:
    gap = 0.05 * np.asarray(samples, dtype=float) / TRAIN_SIZE * math.sqrt(REFERENCE_BATCH / spec.global_batch)
    return val_acc(spec, samples) + gap


def val_loss(spec: RunSpec, samples: np.ndarray) -> np.ndarray:
    return 2.5 - 2.0 * val_acc(spec, samples)


def train_loss_eval(spec: RunSpec, samples: np.ndarray) -> np.ndarray:
    return 2.5 - 2.0 * train_acc(spec, samples)


def _x(n_train: int, b: float) -> float:
    return (n_train / b - 1.0) / (n_train - 1.0)


def _ema(values: np.ndarray, beta: float) -> np.ndarray:
    out = np.empty_like(values)
    acc = 0.0
    for i, v in enumerate(values):
        acc = beta * acc + (1.0 - beta) * v
        out[i] = acc / (1.0 - beta ** (i + 1))
    return out


def write_run_file(path: Path, spec: RunSpec, study: str = "synthetic", swmr: bool = True) -> Path:
    """Writes one run file the way the C++ writer does: latest format, all
    datasets created up front (resizable), SWMR switched on, then rows.
    swmr=False writes an old-format file instead."""
    n, batch = spec.ranks, spec.global_batch
    steps = np.arange(1, spec.steps + 1, dtype=np.int64)
    samples = steps * batch
    loss = train_loss_curve(spec, samples.astype(float))
    weights = np.array(spec.batch_per_rank, dtype=float) / batch
    # Per-rank offsets with zero weighted mean, so sum_i (B_i/B) loss_i == loss.
    offsets = np.linspace(-0.05, 0.05, n) if n > 1 else np.zeros(1)
    offsets = offsets - np.dot(weights, offsets)
    loss_rank = (loss[:, None] + offsets[None, :]).astype(np.float32)

    g2_true = np.exp(-samples / 3000.0)
    trsigma_true = 50.0
    x_i = np.array([_x(TRAIN_SIZE, b) for b in spec.batch_per_rank])
    sq_local = (g2_true[:, None] + trsigma_true * x_i[None, :]).astype(np.float32)
    sq_global = (g2_true + trsigma_true * _x(TRAIN_SIZE, batch)).astype(np.float32)
    if n > 1:
        s_bar = sq_local.astype(float) @ weights
        x_bar = float(weights @ x_i)
        trsigma = (s_bar - sq_global) / (x_bar - _x(TRAIN_SIZE, batch))
        g2 = sq_global - trsigma * _x(TRAIN_SIZE, batch)
        b_simple = _ema(trsigma, EMA_BETA) / _ema(g2, EMA_BETA)
    else:
        trsigma = g2 = b_simple = np.full(len(steps), np.nan)

    lr = spec.peak_lr * np.minimum(1.0, steps / WARMUP_STEPS)
    wall = wall_s(spec, steps.astype(float))
    step_ms = (np.diff(np.concatenate([[0.0], wall])) * 1000.0).astype(np.float32)

    eval_steps = np.array(spec.eval_steps(), dtype=np.int64)
    eval_samples = eval_steps * batch

    # Without SWMR, use the default (oldest) format, as a non-batchscope tool would.
    with h5py.File(path, "w", libver="latest" if swmr else None) as f:
        attrs = {
            "schema": "batchscope-run",
            "schema_version": np.int64(1),
            "study": study,
            "run": spec.name,
            "created": "2024-01-01T00:00:00Z",
            "git_revision": "abc1234",
            "version_batchscope": "0.1.0",
            "version_torch": "2.1.0",
            "version_mpi": "none",
            "version_hdf5": "1.10.8",
            "version_nccl": "none",
            "version_cuda": "none",
            "study_yaml": f"name: {study}\n",
            "run_yaml": f"name: {spec.name}\nseed: {spec.seed}\n",
            "seed": np.int64(spec.seed),
            "study_seed": np.int64(7),
            "model": "mlp",
            "optimizer": "sgd",
            "dataset": "fashion-mnist",
            "comm": "mpi",
            "device": "cpu",
            "base_lr": float(spec.base_lr),
            "peak_lr": float(spec.peak_lr),
            "global_batch": np.int64(batch),
            "ranks": np.int64(n),
            "steps_per_epoch": np.int64(spec.steps_per_epoch),
            "total_steps": np.int64(spec.total_steps),
            "ema_beta": float(EMA_BETA),
        }
        for key, value in attrs.items():
            f.attrs[key] = value

        str_dt = h5py.string_dtype()
        layout = f.create_group("layout")
        layout["world_ranks"] = np.arange(n, dtype=np.int32)
        layout.create_dataset("hosts", data=[f"node{i}" for i in range(n)], dtype=str_dt)
        layout.create_dataset("devices", data=["cpu"] * n, dtype=str_dt)
        layout["batch_per_rank"] = np.array(spec.batch_per_rank, dtype=np.int32)
        layout["global_batch"] = np.int64(batch)
        layout["train_size"] = np.int64(TRAIN_SIZE)
        layout["test_size"] = np.int64(TEST_SIZE)

        status = f.create_group("status")
        code = status.create_dataset("code", data=np.array([0], dtype=np.int32))
        code.attrs["codes"] = "0 running, 1 completed, 2 diverged, 3 failed, 4 preempted"
        status_step = status.create_dataset("step", data=np.array([0], dtype=np.int64))

        def table(group: h5py.Group, columns: dict[str, tuple[np.dtype, int]]) -> dict[str, h5py.Dataset]:
            made = {}
            for name, (dtype, width) in columns.items():
                shape = (0,) if width == 0 else (0, width)
                maxshape = (None,) if width == 0 else (None, width)
                made[name] = group.create_dataset(name, shape=shape, maxshape=maxshape, dtype=dtype, chunks=True)
            return made

        train = table(f.create_group("train"), {
            "step": (np.int64, 0), "samples": (np.int64, 0), "epoch": (np.int32, 0), "lr": (np.float64, 0),
            "loss": (np.float64, 0), "loss_rank": (np.float32, n), "wall_s": (np.float64, 0),
            "step_ms": (np.float32, 0),
        })
        gns = table(f.create_group("gns"), {
            "sqnorm_local": (np.float32, n), "sqnorm_global": (np.float32, 0), "g2_est": (np.float64, 0),
            "trsigma_est": (np.float64, 0), "b_simple": (np.float64, 0),
        })
        evals = table(f.create_group("eval"), {
            name: (np.int64 if name in ("step", "samples") else np.float64, 0)
            for name in ("step", "samples", "epoch", "val_loss", "val_acc", "train_loss", "train_acc")
        })
        if swmr:
            f.swmr_mode = True

        def append(datasets: dict[str, h5py.Dataset], values: dict[str, np.ndarray]) -> None:
            for name, data in values.items():
                ds = datasets[name]
                ds.resize(len(data), axis=0)
                ds[...] = data

        append(train, {
            "step": steps, "samples": samples, "epoch": ((steps - 1) // spec.steps_per_epoch).astype(np.int32),
            "lr": lr, "loss": loss, "loss_rank": loss_rank, "wall_s": wall, "step_ms": step_ms,
        })
        append(gns, {
            "sqnorm_local": sq_local, "sqnorm_global": sq_global, "g2_est": g2, "trsigma_est": trsigma,
            "b_simple": b_simple,
        })
        es = eval_samples.astype(float)
        append(evals, {
            "step": eval_steps, "samples": eval_samples, "epoch": es / TRAIN_SIZE,
            "val_loss": val_loss(spec, es), "val_acc": val_acc(spec, es),
            "train_loss": train_loss_eval(spec, es), "train_acc": train_acc(spec, es),
        })
        code[0] = STATUS_CODES[spec.status]
        status_step[0] = spec.steps
    return path


def write_study(root: Path, specs: tuple[RunSpec, ...] = STUDY_SPECS, study: str = "synthetic") -> Path:
    """A study output folder: study.yaml and runs/<run>.h5."""
    runs = root / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (root / "study.yaml").write_text(f"name: {study}\n")
    for spec in specs:
        write_run_file(runs / f"{spec.name}.h5", spec, study=study)
    return root
