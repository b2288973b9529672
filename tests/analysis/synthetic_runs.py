"""Synthetic run files that follow docs/run-file.md (schema_version 2, or 3 with sharpness) exactly,
written with h5py.

The curves are closed-form functions of (spec, samples) so tests can compute
the values the loader should report without reading the file. The study is
built around known truths:

- steps to the target val_error <= TARGET_VALUE follow S(B) = S_MIN + E_MIN/B
  exactly for seed 0 at lr 0.1 (other seeds and lrs are slower), so the
  critical batch size is B_CRIT = E_MIN / S_MIN;
- the raw gradient norms are |G|^2 + tr(Sigma) x(b) with tr(Sigma) =
  TRSIGMA_TRUE, times small multiplicative noise, and the stored /gns
  estimates are computed from them by `reference_estimates`, a plain
  step-by-step transcription of docs/metrics.md (independent of the package).

Regression (`model.loss: mse`) runs, MSE_SPECS, follow the same curves with
no accuracy: /eval/val_acc and /eval/train_acc are NaN, val_loss is
MSE_SCALE x the classification runs' validation error and train_loss
MSE_SCALE x their training error, so the same batch (B=64) wins, on the
lowest validation loss, and the target val_loss <= MSE_TARGET_VALUE is met
at the same steps as val_error <= TARGET_VALUE (B_crit = 128 again).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import h5py
import numpy as np

TRAIN_SIZE: int = 2048
TEST_SIZE: int = 512
REFERENCE_BATCH: int = 32
EMA_BETA: float = 0.9
EVAL_EVERY: int = 10
WARMUP_STEPS: int = 5
EPOCHS: int = 4
STATUS_CODES: dict[str, int] = {"running": 0, "completed": 1, "diverged": 2, "failed": 3, "preempted": 4}

# Steps-to-target truth: S(B) = S_MIN + E_MIN / B, B_crit = 128. Every
# S(B) + 10 * seed is a multiple of EVAL_EVERY, so eval resolution is exact.
S_MIN: int = 20
E_MIN: int = 2560
B_CRIT: float = E_MIN / S_MIN
TARGET_METRIC: str = "val_error"
TARGET_VALUE: float = 0.15

# Noise truth: tr(Sigma) constant, |G|^2 decaying with samples.
TRSIGMA_TRUE: float = 20.0
NORM_NOISE: float = 0.02

# Regression runs: losses are MSE_SCALE x errors (x 2 is exact in floating
# point, so the target step is the classification runs' one).
MSE_SCALE: float = 2.0
MSE_TARGET_VALUE: float = MSE_SCALE * TARGET_VALUE
# A TorchScript model with BatchNorm: its buffers, as `model_buffers` lists them.
BN_BUFFERS: tuple[str, ...] = ("bn0.running_mean", "bn0.running_var", "bn0.num_batches_tracked")

LAYERS: tuple[str, ...] = ("fc0.weight", "fc0.bias", "fc1.weight")
LAYER_NUMEL: tuple[int, ...] = (100, 10, 50)
# Share of each squared norm per layer; sums to 1 so the layers add up.
LAYER_SHARE: tuple[float, ...] = (0.6, 0.1, 0.3)


@dataclass(frozen=True)
class RunSpec:
    name: str
    batch_per_rank: tuple[int, ...]
    seed: int
    base_lr: float
    epochs: int = EPOCHS
    status: str = "completed"
    # Steps actually written; None = the whole budget (or up to the target with target_stop).
    steps_written: Optional[int] = None
    microbatches: int = 1
    per_layer: bool = False
    # The run's own target (metric, value); None = target_metric "none".
    target: Optional[tuple[str, float]] = None
    target_stop: bool = False
    # Row whose global norm is NaN: the writer skips that step in its EMAs.
    nan_row: Optional[int] = None
    # Root attributes model_loss ("cross_entropy" | "mse"), model_init
    # ("builtin" for mlp/cnn, "file" | "seeded" for torchscript), model_buffers.
    loss: str = "cross_entropy"
    init: str = "builtin"
    buffers: tuple[str, ...] = ()
    # eval.sharpness: the final sharpness (a schema-3 file, sharpness_curve at every `sharpness_every`-th
    # evaluation, NaN at the others); None = a schema-2 file, without sharpness.
    sharpness: Optional[float] = None
    sharpness_every: int = 1

    @property
    def has_accuracy(self) -> bool:
        return self.loss != "mse"

    @property
    def global_batch(self) -> int:
        return sum(self.batch_per_rank)

    @property
    def ranks(self) -> int:
        return len(self.batch_per_rank)

    @property
    def batch_micro(self) -> tuple[int, ...]:
        """Each rank's batch split into m parts as evenly as possible, larger first, rank-major."""
        parts: list[int] = []
        for b in self.batch_per_rank:
            base, extra = divmod(b, self.microbatches)
            parts += [base + (1 if k < extra else 0) for k in range(self.microbatches)]
        return tuple(parts)

    @property
    def steps_per_epoch(self) -> int:
        return TRAIN_SIZE // self.global_batch

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def steps(self) -> int:
        if self.steps_written is not None:
            return self.steps_written
        if self.target_stop:
            hit = first_target_step(self, _budget_eval_steps(self))
            if hit >= 0:
                return hit
        return self.total_steps

    @property
    def peak_lr(self) -> float:
        return self.base_lr * self.global_batch / REFERENCE_BATCH

    def eval_steps(self) -> list[int]:
        steps = list(range(0, self.steps + 1, EVAL_EVERY))
        # The evaluation after the last step exists only once the run has ended.
        if self.status != "running" and steps[-1] != self.steps:
            steps.append(self.steps)
        return steps


def steps_to_target_truth(spec: RunSpec) -> float:
    """The step at which val_error first drops below TARGET_VALUE (an eval step)."""
    slower = 10 * spec.seed + (0 if spec.base_lr == 0.1 else 20)
    return S_MIN + E_MIN / spec.global_batch + slower


def _progress(spec: RunSpec, samples: np.ndarray) -> np.ndarray:
    return np.asarray(samples, dtype=float) / spec.global_batch / steps_to_target_truth(spec)


def val_error(spec: RunSpec, samples: np.ndarray) -> np.ndarray:
    """0.1 + 0.8 exp(-3 p), p = step / steps_to_target_truth: 0.1398 at p = 1,
    above 0.15 at every earlier eval step. B=32 overfits after p = 1.5, so its
    best accuracy comes before the end."""
    p = _progress(spec, samples)
    err = 0.10 + 0.8 * np.exp(-3.0 * p)
    if spec.global_batch == 32:
        err = err + 0.05 * np.maximum(0.0, p - 1.5)
    return err


def val_acc(spec: RunSpec, samples: np.ndarray) -> np.ndarray:
    return 1.0 - val_error(spec, samples)


def train_acc(spec: RunSpec, samples: np.ndarray) -> np.ndarray:
    """val_acc plus a gap that grows with epochs and with log2(batch)."""
    epochs = np.asarray(samples, dtype=float) / TRAIN_SIZE
    return val_acc(spec, samples) + 0.005 * epochs * (1.0 + math.log2(spec.global_batch / 32))


def gap_at(spec: RunSpec, samples: float) -> float:
    return float(train_acc(spec, samples) - val_acc(spec, samples))


def mse_val_loss(spec: RunSpec, samples: np.ndarray) -> np.ndarray:
    """Validation loss of a regression run: MSE_SCALE x the validation error."""
    return MSE_SCALE * val_error(spec, samples)


def mse_train_loss(spec: RunSpec, samples: np.ndarray) -> np.ndarray:
    """Training-subset loss of a regression run: MSE_SCALE x the training error."""
    return MSE_SCALE * (1.0 - train_acc(spec, samples))


def eval_columns(spec: RunSpec, samples: np.ndarray) -> dict[str, np.ndarray]:
    """/eval val_loss, val_acc, train_loss, train_acc at `samples`, as the run's loss defines them."""
    samples = np.asarray(samples, dtype=float)
    if not spec.has_accuracy:
        nan = np.full(samples.shape, np.nan)
        return {"val_loss": mse_val_loss(spec, samples), "val_acc": nan,
                "train_loss": mse_train_loss(spec, samples), "train_acc": nan.copy()}
    return {"val_loss": val_loss(spec, samples), "val_acc": val_acc(spec, samples),
            "train_loss": train_loss_eval(spec, samples), "train_acc": train_acc(spec, samples)}


SHARPNESS_SUBSET: int = 64
SHARPNESS_RESIDUAL: float = 1e-3


def sharpness_curve(spec: RunSpec, eval_samples: np.ndarray) -> np.ndarray:
    """/eval/sharpness: rising linearly in samples from 0.4 x spec.sharpness to spec.sharpness at the
    last evaluation, at every sharpness_every-th evaluation (the step-0 one counts as the 0th), NaN
    at the others."""
    assert spec.sharpness is not None
    x = np.asarray(eval_samples, dtype=float)
    end = float(x[-1]) if len(x) and x[-1] > 0 else 1.0
    values = spec.sharpness * (0.4 + 0.6 * x / end)
    measured = np.arange(len(x)) % spec.sharpness_every == 0
    return np.where(measured, values, np.nan)


def val_loss(spec: RunSpec, samples: np.ndarray) -> np.ndarray:
    return 2.5 - 2.0 * val_acc(spec, samples)


def train_loss_eval(spec: RunSpec, samples: np.ndarray) -> np.ndarray:
    return 2.5 - 2.0 * train_acc(spec, samples)


def train_loss_curve(spec: RunSpec, samples: np.ndarray) -> np.ndarray:
    return 0.3 + 2.0 * np.exp(-samples / 1500.0) + 0.01 * spec.seed + 0.02 * np.sin(samples / 97.0)


def wall_s(spec: RunSpec, step: np.ndarray) -> np.ndarray:
    return step * 0.01 * math.sqrt(spec.global_batch / REFERENCE_BATCH)


def g2_true(samples: np.ndarray) -> np.ndarray:
    return np.exp(-np.asarray(samples, dtype=float) / 3000.0)


def x_of(b: float, n_train: int = TRAIN_SIZE) -> float:
    return (n_train / b - 1.0) / (n_train - 1.0)


def _budget_eval_steps(spec: RunSpec) -> list[int]:
    steps = list(range(0, spec.total_steps + 1, EVAL_EVERY))
    return steps if steps[-1] == spec.total_steps else steps + [spec.total_steps]


def first_target_step(spec: RunSpec, eval_steps: list[int], target: Optional[tuple[str, float]] = None) -> int:
    """What the writer stores in /target/step: first eval step meeting the target, or -1."""
    target = target if target is not None else spec.target
    if target is None:
        return -1
    metric, value = target
    assert metric in ("val_error", "val_loss"), "the synthetic writer knows val_error and val_loss targets"
    for step in eval_steps:
        columns = eval_columns(spec, np.float64(step * spec.global_batch))
        current = 1.0 - float(columns["val_acc"]) if metric == "val_error" else float(columns["val_loss"])
        if current <= value:
            return step
    return -1


def raw_norms(spec: RunSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sqnorm_local [T, n], sqnorm_micro [T, n*m], sqnorm_global [T]) as float32.

    E|g_b|^2 = |G|^2 + tr(Sigma) x(b), times 1 + NORM_NOISE * N(0, 1). With
    m = 1 the micro-batches are the ranks and the two arrays are the same.
    """
    steps = np.arange(1, spec.steps + 1, dtype=np.float64)
    g2 = g2_true(steps * spec.global_batch)
    rng = np.random.default_rng([spec.seed, spec.global_batch, spec.microbatches, 2024])

    def draw(batches: tuple[int, ...]) -> np.ndarray:
        mean = g2[:, None] + TRSIGMA_TRUE * np.array([x_of(b) for b in batches])[None, :]
        return (mean * (1.0 + NORM_NOISE * rng.standard_normal(mean.shape))).astype(np.float32)

    local = draw(spec.batch_per_rank)
    micro = local.copy() if spec.microbatches == 1 else draw(spec.batch_micro)
    glob = draw((spec.global_batch,))[:, 0]
    if spec.nan_row is not None:
        glob[spec.nan_row] = np.nan
    return local, micro, glob


def reference_estimates(
    batch_micro: tuple[int, ...], s_micro: np.ndarray, s_global: np.ndarray, n_train: int, beta: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(g2_est, trsigma_est, b_simple) step by step, straight from docs/metrics.md.

    Written as the C++ writer's loop is (src/noise/estimator.cpp): sample-share
    weights, finite-population x(b), bias-corrected EMAs of trsigma and g2,
    steps with a non-finite estimate skipped (b_simple NaN there).
    """
    steps = s_global.shape[0]
    g2_out = np.full(steps, np.nan)
    tr_out = np.full(steps, np.nan)
    b_out = np.full(steps, np.nan)
    if len(batch_micro) < 2:
        return g2_out, tr_out, b_out
    big = float(sum(batch_micro))
    weights = [b / big for b in batch_micro]
    x_bar = 0.0
    for w, b in zip(weights, batch_micro):
        x_bar += w * x_of(b, n_train)
    x_big = x_of(big, n_train)
    ema_tr = ema_g2 = 0.0
    beta_pow = 1.0
    for t in range(steps):
        s_bar = 0.0
        for k, w in enumerate(weights):
            s_bar += w * float(s_micro[t, k])
        big_sq = float(s_global[t])
        trsigma = (s_bar - big_sq) / (x_bar - x_big)
        g2 = big_sq - trsigma * x_big
        g2_out[t], tr_out[t] = g2, trsigma
        if not (math.isfinite(trsigma) and math.isfinite(g2)):
            continue
        ema_tr = beta * ema_tr + (1 - beta) * trsigma
        ema_g2 = beta * ema_g2 + (1 - beta) * g2
        beta_pow *= beta
        corr = 1 - beta_pow
        b_out[t] = (ema_tr / corr) / (ema_g2 / corr)
    return g2_out, tr_out, b_out


def write_run_file(path: Path, spec: RunSpec, study: str = "synthetic", swmr: bool = True) -> Path:
    """Writes one run file the way the C++ writer does: latest format, all
    datasets created up front (resizable), SWMR switched on, then rows.
    swmr=False writes an old-format file instead."""
    n, batch, m = spec.ranks, spec.global_batch, spec.microbatches
    micro_batches = spec.batch_micro
    k_count, l_count = len(micro_batches), len(LAYERS)
    steps = np.arange(1, spec.steps + 1, dtype=np.int64)
    samples = steps * batch
    loss = train_loss_curve(spec, samples.astype(float))
    weights = np.array(spec.batch_per_rank, dtype=float) / batch
    # Per-rank offsets with zero weighted mean, so sum_i (B_i/B) loss_i == loss.
    offsets = np.linspace(-0.05, 0.05, n) if n > 1 else np.zeros(1)
    offsets = offsets - np.dot(weights, offsets)
    loss_rank = (loss[:, None] + offsets[None, :]).astype(np.float32)

    sq_local, sq_micro, sq_global = raw_norms(spec)
    g2, trsigma, b_simple = reference_estimates(micro_batches, sq_micro, sq_global, TRAIN_SIZE, EMA_BETA)

    lr = spec.peak_lr * np.minimum(1.0, steps / WARMUP_STEPS)
    wall = wall_s(spec, steps.astype(float))
    step_ms = (np.diff(np.concatenate([[0.0], wall])) * 1000.0).astype(np.float32)

    eval_steps = np.array(spec.eval_steps(), dtype=np.int64)
    eval_samples = eval_steps * batch
    target_step = first_target_step(spec, spec.eval_steps())

    # Without SWMR, use the default (oldest) format, as a non-batchscope tool would.
    with h5py.File(path, "w", libver="latest" if swmr else None) as f:
        attrs = {
            "schema": "batchscope-run",
            "schema_version": np.int64(2 if spec.sharpness is None else 3),
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
            "model": "mlp" if spec.init == "builtin" else "torchscript",
            "optimizer": "sgd",
            "dataset": "fashion-mnist" if spec.init == "builtin" else "hdf5",
            "comm": "mpi",
            "device": "cpu",
            "base_lr": float(spec.base_lr),
            "peak_lr": float(spec.peak_lr),
            "global_batch": np.int64(batch),
            "ranks": np.int64(n),
            "steps_per_epoch": np.int64(spec.steps_per_epoch),
            "total_steps": np.int64(spec.total_steps),
            "ema_beta": float(EMA_BETA),
            "microbatches": np.int64(m),
            "target_metric": spec.target[0] if spec.target else "none",
            "target_value": float(spec.target[1]) if spec.target else float("nan"),
            "target_stop": np.int64(1 if spec.target_stop else 0),
            "model_loss": spec.loss,
            "model_init": spec.init,
            "model_buffers": ",".join(spec.buffers),
        }
        for key, value in attrs.items():
            f.attrs[key] = value

        str_dt = h5py.string_dtype()
        layout = f.create_group("layout")
        layout["world_ranks"] = np.arange(n, dtype=np.int32)
        layout.create_dataset("hosts", data=[f"node{i}" for i in range(n)], dtype=str_dt)
        layout.create_dataset("devices", data=["cpu"] * n, dtype=str_dt)
        layout["batch_per_rank"] = np.array(spec.batch_per_rank, dtype=np.int32)
        layout["batch_micro"] = np.array(micro_batches, dtype=np.int32)
        layout.create_dataset("layers", data=list(LAYERS), dtype=str_dt)
        layout["layer_numel"] = np.array(LAYER_NUMEL, dtype=np.int32)
        layout["global_batch"] = np.int64(batch)
        layout["train_size"] = np.int64(TRAIN_SIZE)
        layout["test_size"] = np.int64(TEST_SIZE)
        if spec.sharpness is not None:
            layout["sharpness_subset"] = np.arange(SHARPNESS_SUBSET, dtype=np.int64)
            f.create_group("final").create_dataset("params", data=np.zeros(sum(LAYER_NUMEL)), dtype=np.float64)

        status = f.create_group("status")
        code = status.create_dataset("code", data=np.array([0], dtype=np.int32))
        code.attrs["codes"] = "0 running, 1 completed, 2 diverged, 3 failed, 4 preempted"
        status_step = status.create_dataset("step", data=np.array([0], dtype=np.int64))

        target_group = f.create_group("target")
        target_step_ds = target_group.create_dataset("step", data=np.array([-1], dtype=np.int64))
        target_samples_ds = target_group.create_dataset("samples", data=np.array([-1], dtype=np.int64))

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
        gns_columns: dict[str, tuple[np.dtype, int]] = {
            "sqnorm_local": (np.float32, n), "sqnorm_micro": (np.float32, k_count), "sqnorm_global": (np.float32, 0),
            "g2_est": (np.float64, 0), "trsigma_est": (np.float64, 0), "b_simple": (np.float64, 0),
        }
        if spec.per_layer:
            gns_columns["sqnorm_layer_micro"] = (np.float32, k_count * l_count)
            gns_columns["sqnorm_layer_global"] = (np.float32, l_count)
        gns = table(f.create_group("gns"), gns_columns)
        eval_names = ("step", "samples", "epoch", "val_loss", "val_acc", "train_loss", "train_acc")
        if spec.sharpness is not None:
            eval_names += ("sharpness", "sharpness_iterations", "sharpness_residual")
        evals = table(f.create_group("eval"), {
            name: ({"step": np.int64, "samples": np.int64, "sharpness_iterations": np.int32}.get(name, np.float64), 0)
            for name in eval_names
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
        gns_values = {
            "sqnorm_local": sq_local, "sqnorm_micro": sq_micro, "sqnorm_global": sq_global, "g2_est": g2,
            "trsigma_est": trsigma, "b_simple": b_simple,
        }
        if spec.per_layer:
            share = np.array(LAYER_SHARE)
            layer_micro = sq_micro.astype(float)[:, :, None] * share[None, None, :]
            gns_values["sqnorm_layer_micro"] = layer_micro.reshape(len(steps), -1).astype(np.float32)
            gns_values["sqnorm_layer_global"] = (sq_global.astype(float)[:, None] * share[None, :]).astype(np.float32)
        append(gns, gns_values)
        es = eval_samples.astype(float)
        eval_values = {"step": eval_steps, "samples": eval_samples, "epoch": es / TRAIN_SIZE, **eval_columns(spec, es)}
        if spec.sharpness is not None:
            sharp = sharpness_curve(spec, es)
            eval_values["sharpness"] = sharp
            eval_values["sharpness_iterations"] = np.where(np.isfinite(sharp), 10, 0).astype(np.int32)
            eval_values["sharpness_residual"] = np.where(np.isfinite(sharp), SHARPNESS_RESIDUAL, np.nan)
        append(evals, eval_values)
        target_step_ds[0] = target_step
        target_samples_ds[0] = target_step * batch if target_step >= 0 else -1
        code[0] = STATUS_CODES[spec.status]
        status_step[0] = spec.steps
    return path


TARGET: tuple[str, float] = (TARGET_METRIC, TARGET_VALUE)

# 4 global batches x 2 seeds on 1 or 2 ranks (one uneven split), with
# micro-batches (m = 2, and m = 3 with uneven micro-batches), plus a live run.
# b128-s0 also stores per-layer norms and its own target; b128-s1 has a step
# with a NaN global norm.
STUDY_SPECS: tuple[RunSpec, ...] = (
    RunSpec("b32-s0", (32,), 0, 0.1, microbatches=2),
    RunSpec("b32-s1", (32,), 1, 0.1, microbatches=2),
    RunSpec("b64-s0", (32, 32), 0, 0.1),
    RunSpec("b64-s1", (32, 32), 1, 0.1),
    RunSpec("b128-s0", (48, 80), 0, 0.1, microbatches=3, per_layer=True, target=TARGET),
    RunSpec("b128-s1", (48, 80), 1, 0.1, microbatches=3, nan_row=7),
    RunSpec("b256-s0", (128, 128), 0, 0.1, microbatches=2),
    RunSpec("b256-s1", (128, 128), 1, 0.1, microbatches=2),
    RunSpec("b64-s2-live", (32, 32), 2, 0.05, status="running", steps_written=23),
)

# Outside the study: one rank without micro-batches (no noise estimate), and
# a run that stops at its target.
SINGLE_SPEC: RunSpec = RunSpec("b32-single", (32,), 0, 0.1)
STOP_SPEC: RunSpec = RunSpec("b64-stop", (32, 32), 0, 0.1, target=TARGET, target_stop=True)


MSE_TARGET: tuple[str, float] = ("val_loss", MSE_TARGET_VALUE)

# A regression study: a TorchScript model with BatchNorm trained with mse
# (no accuracy), 4 global batches x 2 seeds, every run declaring the target
# val_loss <= MSE_TARGET_VALUE. B=64 is split unevenly, [16, 48].
MSE_SPECS: tuple[RunSpec, ...] = tuple(
    RunSpec(f"m{sum(split)}-s{seed}", split, seed, 0.1, microbatches=2, target=MSE_TARGET, loss="mse",
            init="file", buffers=BN_BUFFERS)
    for split in ((32,), (16, 48), (64, 64), (128, 128))
    for seed in (0, 1)
)


def write_study(root: Path, specs: tuple[RunSpec, ...] = STUDY_SPECS, study: str = "synthetic") -> Path:
    """A study output folder: study.yaml and runs/<run>.h5."""
    runs = root / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (root / "study.yaml").write_text(f"name: {study}\n")
    for spec in specs:
        write_run_file(runs / f"{spec.name}.h5", spec, study=study)
    return root
