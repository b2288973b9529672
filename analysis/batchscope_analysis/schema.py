"""Checks a run file against the `batchscope-run` schema (docs/run-file.md).

The checker reports every problem it can find instead of stopping at the
first, so one run of `batchscope-analysis check` shows the C++ writer all that
is wrong. Checks that depend on a missing or malformed item are skipped rather
than reported twice.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Union

import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd

from batchscope_analysis import h5io
from batchscope_analysis.errors import RunFileError
from batchscope_analysis.score import LOSS_MSE, MODEL_INITS, MODEL_LOSSES
from batchscope_analysis.status import STATUS_NAMES
from batchscope_analysis.target import METRICS, NO_TARGET, is_accuracy_metric, stored_target

SCHEMA_NAME: str = "batchscope-run"
SCHEMA_VERSION: int = 3
# Versions this checker reads: 2 lacks what VERSION_3_DATASETS lists.
READABLE_VERSIONS: tuple[int, ...] = (2, 3)

# Attribute name -> value kind ("str", "int" or "float").
ROOT_ATTRS: dict[str, str] = {
    "schema": "str",
    "schema_version": "int",
    "study": "str",
    "run": "str",
    "created": "str",
    "git_revision": "str",
    "version_batchscope": "str",
    "version_torch": "str",
    "version_mpi": "str",
    "version_hdf5": "str",
    "version_nccl": "str",
    "version_cuda": "str",
    "study_yaml": "str",
    "run_yaml": "str",
    "seed": "int",
    "study_seed": "int",
    "model": "str",
    "optimizer": "str",
    "dataset": "str",
    "comm": "str",
    "device": "str",
    "base_lr": "float",
    "peak_lr": "float",
    "global_batch": "int",
    "ranks": "int",
    "steps_per_epoch": "int",
    "total_steps": "int",
    "ema_beta": "float",
    "microbatches": "int",
    "target_metric": "str",
    "target_value": "float",
    "target_stop": "int",
}

# Root attributes describing the model (files written before they existed
# lack them and mean a built-in model with cross-entropy: score.MODEL_ATTR_DEFAULTS),
# the BLAS the run computed with, the noise EMA's window in samples and Adam's
# beta2 at the run's batch (absent in older files); checked only when present.
OPTIONAL_ROOT_ATTRS: dict[str, str] = {
    "model_loss": "str",
    "model_init": "str",
    "model_buffers": "str",
    "blas": "str",
    "ema_samples": "float",
    "beta2": "float",
}

# Shape entries are fixed sizes or symbols: "n" = ranks, "K" = micro-batches
# (n*m), "L" = layers, "T" = rows of /train and /gns, "E" = rows of /eval, and
# products such as "K*L". Every use of a symbol must agree.
Shape = tuple[Union[int, str], ...]
DATASETS: dict[str, dict[str, tuple[Shape, str]]] = {
    "layout": {
        "world_ranks": (("n",), "int"),
        "hosts": (("n",), "str"),
        "devices": (("n",), "str"),
        "batch_per_rank": (("n",), "int"),
        "batch_micro": (("K",), "int"),
        "layers": (("L",), "str"),
        "layer_numel": (("L",), "int"),
        "global_batch": ((), "int"),
        "train_size": ((), "int"),
        "test_size": ((), "int"),
        "sharpness_subset": (("S",), "int"),
    },
    "status": {
        "code": ((1,), "int"),
        "step": ((1,), "int"),
    },
    "train": {
        "step": (("T",), "int"),
        "samples": (("T",), "int"),
        "epoch": (("T",), "int"),
        "lr": (("T",), "float"),
        "loss": (("T",), "float"),
        "loss_rank": (("T", "n"), "float"),
        "wall_s": (("T",), "float"),
        "step_ms": (("T",), "float"),
    },
    "gns": {
        "sqnorm_local": (("T", "n"), "float"),
        "sqnorm_micro": (("T", "K"), "float"),
        "sqnorm_global": (("T",), "float"),
        "g2_est": (("T",), "float"),
        "trsigma_est": (("T",), "float"),
        "b_simple": (("T",), "float"),
    },
    "eval": {
        "step": (("E",), "int"),
        "samples": (("E",), "int"),
        "epoch": (("E",), "float"),
        "val_loss": (("E",), "float"),
        "val_acc": (("E",), "float"),
        "train_loss": (("E",), "float"),
        "train_acc": (("E",), "float"),
        "sharpness": (("E",), "float"),
        "sharpness_iterations": (("E",), "int"),
        "sharpness_residual": (("E",), "float"),
    },
    "target": {
        "step": ((1,), "int"),
        "samples": ((1,), "int"),
    },
    "final": {
        "params": (("P",), "float"),
    },
}

# Added in schema version 3: a version-2 file lacks them (no sharpness, no
# final parameters), which is not a problem.
VERSION_3_DATASETS: frozenset[str] = frozenset(
    {
        "/layout/sharpness_subset",
        "/eval/sharpness",
        "/eval/sharpness_iterations",
        "/eval/sharpness_residual",
        "/final/params",
    }
)

# Written only with `gns.per_layer`; checked like DATASETS when present.
OPTIONAL_DATASETS: dict[str, dict[str, tuple[Shape, str]]] = {
    "gns": {
        "sqnorm_layer_micro": (("T", "K*L"), "float"),
        "sqnorm_layer_global": (("T", "L"), "float"),
    },
}

_SYMBOL_MEANING: dict[str, str] = {
    "n": "rank count",
    "K": "micro-batch count",
    "L": "layer count",
    "K*L": "micro-batches x layers",
    "T": "row count",
    "E": "row count",
    "S": "sharpness subset size",
    "P": "parameter count",
}

TARGET_METRICS: tuple[str, ...] = ("val_error", "val_acc", "val_loss", "train_loss")
# Per-layer squared norms add up to the whole norm exactly in real numbers;
# float32 storage and summation order leave a relative error far below this.
_LAYER_SUM_RTOL: float = 1e-3
# Rows read at a time when comparing per-layer norms, to bound memory on long runs.
_CHUNK_ROWS: int = 4096


def check_run_file(path: Union[str, Path]) -> list[str]:
    """Problems of one run file, as human-readable lines; [] means valid.

    Raises RunFileError if the file cannot be opened as HDF5 at all: that is
    bad input, not a schema problem.
    """
    with h5io.open_run_file(path) as f:
        try:
            return _Checker(f).run()
        except OSError as exc:
            # Damaged data blocks surface only when read; name the file.
            raise RunFileError(path, f"read error ({exc})") from exc


class _Checker:
    def __init__(self, f: h5py.File) -> None:
        self.f: h5py.File = f
        self.problems: list[str] = []
        self.attrs: dict[str, Any] = {}
        # Datasets that exist with the right kind and shape, by "/group/name".
        self.good: dict[str, h5py.Dataset] = {}
        # Symbol -> (size, where it was first seen).
        self.dims: dict[str, tuple[int, str]] = {}

    def run(self) -> list[str]:
        self._check_root_attrs()
        self._check_datasets()
        self._check_layout_values()
        self._check_train_values()
        self._check_eval_values()
        self._check_status_values()
        self._check_micro_values()
        self._check_layer_values()
        self._check_target_values()
        self._check_model_values()
        return self.problems

    def _report(self, message: str) -> None:
        self.problems.append(message)

    def _check_root_attrs(self) -> None:
        required = [(n, k, True) for n, k in ROOT_ATTRS.items()]
        optional = [(n, k, False) for n, k in OPTIONAL_ROOT_ATTRS.items()]
        for name, kind, must in required + optional:
            if name not in self.f.attrs:
                if must:
                    self._report(f"missing root attribute '{name}'")
                continue
            value = self.f.attrs[name]
            if not _value_has_kind(value, kind):
                self._report(f"root attribute '{name}' should be a scalar {kind}, got {_describe(value)}")
                continue
            self.attrs[name] = h5io.to_python(value)
        allowed = {"model_loss": MODEL_LOSSES, "model_init": MODEL_INITS}
        for name, values in allowed.items():
            if name in self.attrs and self.attrs[name] not in values:
                self._report(f"root attribute '{name}' is {self.attrs[name]!r}, expected one of {', '.join(values)}")

        if "schema" in self.attrs and self.attrs["schema"] != SCHEMA_NAME:
            self._report(f"root attribute 'schema' is {self.attrs['schema']!r}, expected {SCHEMA_NAME!r}")
        if "schema_version" in self.attrs and self.attrs["schema_version"] not in READABLE_VERSIONS:
            self._report(
                f"root attribute 'schema_version' is {self.attrs['schema_version']}, expected one of "
                f"{', '.join(str(v) for v in READABLE_VERSIONS)}"
            )
        ranks = self.attrs.get("ranks")
        if ranks is not None:
            if ranks < 1:
                self._report(f"root attribute 'ranks' is {ranks}, expected >= 1")
            else:
                # The attribute is the reference that dataset widths must match.
                self.dims["n"] = (ranks, "root attribute 'ranks'")
        batch = self.attrs.get("global_batch")
        if batch is not None and batch < 1:
            self._report(f"root attribute 'global_batch' is {batch}, expected >= 1")
        micro = self.attrs.get("microbatches")
        if micro is not None:
            if micro < 1:
                self._report(f"root attribute 'microbatches' is {micro}, expected >= 1")
            elif ranks is not None and ranks >= 1:
                self.dims["K"] = (ranks * micro, "root attributes 'ranks' x 'microbatches'")
        self._check_target_attrs()

    def _check_target_attrs(self) -> None:
        metric = self.attrs.get("target_metric")
        value = self.attrs.get("target_value")
        if metric is not None and metric != NO_TARGET and metric not in TARGET_METRICS:
            self._report(
                f"root attribute 'target_metric' is {metric!r}, expected one of "
                f"{', '.join(TARGET_METRICS + (NO_TARGET,))}"
            )
        if metric is not None and value is not None:
            if metric == NO_TARGET and not math.isnan(value):
                self._report(f"root attribute 'target_value' is {value}, expected NaN when 'target_metric' is 'none'")
            elif metric != NO_TARGET and not math.isfinite(value):
                self._report(f"root attribute 'target_value' is {value}, expected a number for target {metric!r}")
        stop = self.attrs.get("target_stop")
        if stop is not None and stop not in (0, 1):
            self._report(f"root attribute 'target_stop' is {stop}, expected 0 or 1")

    def _before_version_3(self) -> bool:
        return int(self.attrs.get("schema_version", SCHEMA_VERSION)) < 3

    def _check_datasets(self) -> None:
        old = self._before_version_3()
        for group, members in DATASETS.items():
            if group not in self.f or not isinstance(self.f[group], h5py.Group):
                if not (old and all(f"/{group}/{name}" in VERSION_3_DATASETS for name in members)):
                    self._report(f"missing group '/{group}'")
                continue
            optional = OPTIONAL_DATASETS.get(group, {})
            for name, (shape, kind) in {**members, **optional}.items():
                where = f"/{group}/{name}"
                obj = self.f[group].get(name)
                if obj is None and (name in optional or (old and where in VERSION_3_DATASETS)):
                    continue
                if not isinstance(obj, h5py.Dataset):
                    self._report(f"missing dataset '{where}'")
                    continue
                if not _dtype_has_kind(obj.dtype, kind):
                    self._report(f"dataset '{where}' should hold {kind} values, has dtype {obj.dtype}")
                    continue
                if self._shape_ok(where, obj.shape, shape):
                    self.good[where] = obj

    def _shape_ok(self, where: str, actual: tuple[int, ...], expected: Shape) -> bool:
        if len(actual) != len(expected):
            self._report(f"dataset '{where}' should have shape {_shape_text(expected)}, has {list(actual)}")
            return False
        ok = True
        for axis, (size, want) in enumerate(zip(actual, expected)):
            if isinstance(want, int):
                if size != want:
                    self._report(f"dataset '{where}' should have shape {_shape_text(expected)}, has {list(actual)}")
                    ok = False
                continue
            if "*" in want:
                # A product of symbols fixed elsewhere; unknown factors were
                # reported where they are defined, so there is nothing to add.
                factors = [self.dims.get(part) for part in want.split("*")]
                known = [f for f in factors if f is not None]
                if len(known) == len(factors):
                    product = math.prod(f[0] for f in known)
                    if size != product:
                        sources = " x ".join(f"{f[1]} ({f[0]})" for f in known)
                        self._report(
                            f"dataset '{where}' axis {axis} ({_SYMBOL_MEANING[want]}) is {size}, "
                            f"but {sources} gives {product}"
                        )
                        ok = False
                continue
            seen = self.dims.get(want)
            if seen is None:
                self.dims[want] = (size, f"'{where}'")
            elif seen[0] != size:
                meaning = _SYMBOL_MEANING[want]
                self._report(
                    f"dataset '{where}' axis {axis} ({meaning}) is {size}, but {seen[1]} gives {seen[0]}"
                )
                ok = False
        return ok

    def _global_batch(self) -> Optional[int]:
        if "global_batch" in self.attrs:
            return int(self.attrs["global_batch"])
        ds = self.good.get("/layout/global_batch")
        return int(ds[()]) if ds is not None else None

    def _check_layout_values(self) -> None:
        per_rank = self.good.get("/layout/batch_per_rank")
        layout_batch = self.good.get("/layout/global_batch")
        attr_batch = self.attrs.get("global_batch")
        if layout_batch is not None and attr_batch is not None and int(layout_batch[()]) != attr_batch:
            self._report(
                f"'/layout/global_batch' is {int(layout_batch[()])}, root attribute 'global_batch' is {attr_batch}"
            )
        batch = self._global_batch()
        if per_rank is not None:
            values = np.asarray(per_rank[()], dtype=np.int64)
            if np.any(values < 1):
                self._report(f"'/layout/batch_per_rank' has non-positive entries {values.tolist()}")
            if batch is not None and int(values.sum()) != batch:
                self._report(
                    f"sum of '/layout/batch_per_rank' {values.tolist()} is {int(values.sum())}, "
                    f"global batch is {batch}"
                )
        train_size = self.good.get("/layout/train_size")
        per_epoch = self.attrs.get("steps_per_epoch")
        if train_size is not None and per_epoch is not None and batch:
            expected = int(train_size[()]) // batch
            if per_epoch != expected:
                self._report(
                    f"root attribute 'steps_per_epoch' is {per_epoch}, expected floor(train_size / global_batch) "
                    f"= {expected}"
                )

    def _check_train_values(self) -> None:
        step_ds = self.good.get("/train/step")
        if step_ds is None:
            return
        steps = np.asarray(step_ds[()], dtype=np.int64)
        if steps.size and steps[0] != 1:
            self._report(f"'/train/step' starts at {steps[0]}, expected 1")
        bad = np.flatnonzero(np.diff(steps) <= 0)
        if bad.size:
            row = int(bad[0]) + 1
            self._report(
                f"'/train/step' is not strictly increasing: row {row} is {steps[row]} after {steps[row - 1]} "
                f"({bad.size} such rows)"
            )
        self._check_samples("/train", steps)

    def _check_eval_values(self) -> None:
        step_ds = self.good.get("/eval/step")
        if step_ds is None:
            return
        steps = np.asarray(step_ds[()], dtype=np.int64)
        if steps.size and steps[0] < 0:
            self._report(f"'/eval/step' starts at {steps[0]}, expected >= 0")
        bad = np.flatnonzero(np.diff(steps) < 0)
        if bad.size:
            row = int(bad[0]) + 1
            self._report(
                f"'/eval/step' decreases: row {row} is {steps[row]} after {steps[row - 1]} ({bad.size} such rows)"
            )
        self._check_samples("/eval", steps)

    def _check_samples(self, group: str, steps: npt.NDArray[np.int64]) -> None:
        samples_ds = self.good.get(f"{group}/samples")
        batch = self._global_batch()
        if samples_ds is None or batch is None:
            return
        samples = np.asarray(samples_ds[()], dtype=np.int64)
        if samples.shape != steps.shape:
            return  # already reported as a row-count mismatch
        bad = np.flatnonzero(samples != steps * batch)
        if bad.size:
            row = int(bad[0])
            self._report(
                f"'{group}/samples' != step * global_batch ({batch}) in {bad.size} rows, first row {row}: "
                f"step {steps[row]}, samples {samples[row]}"
            )

    def _check_status_values(self) -> None:
        code_ds = self.good.get("/status/code")
        if code_ds is not None:
            code = int(code_ds[0])
            if not 0 <= code < len(STATUS_NAMES):
                self._report(f"'/status/code' is {code}, expected 0..{len(STATUS_NAMES) - 1}")
        step_ds = self.good.get("/status/step")
        if step_ds is not None and int(step_ds[0]) < 0:
            self._report(f"'/status/step' is {int(step_ds[0])}, expected >= 0")


    def _check_micro_values(self) -> None:
        micro_ds = self.good.get("/layout/batch_micro")
        if micro_ds is None:
            return
        micro = np.asarray(micro_ds[()], dtype=np.int64)
        if np.any(micro < 1):
            self._report(f"'/layout/batch_micro' has non-positive entries {micro.tolist()}")
        per_rank_ds = self.good.get("/layout/batch_per_rank")
        m = self.attrs.get("microbatches")
        if per_rank_ds is not None and m and m >= 1 and micro.size == per_rank_ds.shape[0] * m:
            per_rank = np.asarray(per_rank_ds[()], dtype=np.int64)
            sums = micro.reshape(-1, m).sum(axis=1)  # rank-major: rank i owns k = i*m .. i*m+m-1
            if not np.array_equal(sums, per_rank):
                self._report(
                    f"'/layout/batch_micro' {micro.tolist()} sums per rank (m = {m}) to {sums.tolist()}, "
                    f"'/layout/batch_per_rank' is {per_rank.tolist()}"
                )
        if m == 1:
            # With one micro-batch per rank the two datasets hold the same norms.
            local = self.good.get("/gns/sqnorm_local")
            micro_sq = self.good.get("/gns/sqnorm_micro")
            if local is not None and micro_sq is not None and local.shape == micro_sq.shape:
                a, b = np.asarray(local[()], dtype=float), np.asarray(micro_sq[()], dtype=float)
                if not np.allclose(a, b, rtol=1e-6, atol=0.0, equal_nan=True):
                    self._report("'/gns/sqnorm_micro' differs from '/gns/sqnorm_local' although 'microbatches' is 1")

    def _check_layer_values(self) -> None:
        numel_ds = self.good.get("/layout/layer_numel")
        if numel_ds is not None:
            numel = np.asarray(numel_ds[()], dtype=np.int64)
            if np.any(numel < 1):
                self._report(f"'/layout/layer_numel' has non-positive entries {numel.tolist()}")
        layers = self.dims.get("L", (0, ""))[0]
        if not layers:
            return
        pairs = (
            ("/gns/sqnorm_layer_micro", "/gns/sqnorm_micro"),
            ("/gns/sqnorm_layer_global", "/gns/sqnorm_global"),
        )
        for per_layer_name, whole_name in pairs:
            per_layer, whole = self.good.get(per_layer_name), self.good.get(whole_name)
            if per_layer is None or whole is None:
                continue
            bad_rows, first = 0, -1
            rows = min(per_layer.shape[0], whole.shape[0])
            for start in range(0, rows, _CHUNK_ROWS):
                stop = min(rows, start + _CHUNK_ROWS)
                parts = np.asarray(per_layer[start:stop], dtype=float)
                total = np.asarray(whole[start:stop], dtype=float)
                summed = parts.reshape(stop - start, -1, layers).sum(axis=2).reshape(total.shape)
                finite = np.isfinite(summed) & np.isfinite(total)
                off = finite & ~np.isclose(summed, total, rtol=_LAYER_SUM_RTOL, atol=0.0)
                off_rows = off.reshape(stop - start, -1).any(axis=1)
                if off_rows.any() and first < 0:
                    first = start + int(np.flatnonzero(off_rows)[0])
                bad_rows += int(off_rows.sum())
            if bad_rows:
                self._report(
                    f"'{per_layer_name}' summed over layers differs from '{whole_name}' in {bad_rows} rows, "
                    f"first row {first}"
                )

    def _check_target_values(self) -> None:
        step_ds, samples_ds = self.good.get("/target/step"), self.good.get("/target/samples")
        if step_ds is None:
            return
        step = int(step_ds[0])
        if step < -1:
            self._report(f"'/target/step' is {step}, expected -1 or >= 0")
            return
        batch = self._global_batch()
        if samples_ds is not None and batch is not None:
            samples = int(samples_ds[0])
            expected = -1 if step == -1 else step * batch
            if samples != expected:
                self._report(f"'/target/samples' is {samples}, expected {expected} ('/target/step' {step} x B {batch})")
        metric = self.attrs.get("target_metric")
        if metric == NO_TARGET and step != -1:
            self._report(f"'/target/step' is {step}, expected -1 when 'target_metric' is 'none'")
        if step < 0:
            return
        self._check_target_against_eval(step)
        stop, status = self.attrs.get("target_stop"), self.good.get("/status/code")
        train_steps = self.good.get("/train/step")
        if stop == 1 and status is not None and int(status[0]) == 1 and train_steps is not None:
            last = int(train_steps[-1]) if train_steps.shape[0] else 0
            if last != step:
                self._report(
                    f"run stops at its target ('target_stop' 1) and completed, but '/train/step' ends at {last}, "
                    f"'/target/step' is {step}"
                )

    def _check_target_against_eval(self, step: int) -> None:
        """/target/step must be the first eval row meeting the stored target."""
        target = stored_target(self.attrs)
        eval_step = self.good.get("/eval/step")
        if target is None or eval_step is None:
            return
        steps = np.asarray(eval_step[()], dtype=np.int64)
        if steps.size == 0 or step > steps[-1]:
            return  # a live reader may see /target before the eval row is flushed
        rows = np.flatnonzero(steps == step)
        if rows.size == 0:
            self._report(f"'/target/step' {step} is not an evaluated step ('/eval/step')")
            return
        column = METRICS[target.metric][0]
        if f"/eval/{column}" not in self.good:
            return
        evals = pd.DataFrame({column: np.asarray(self.good[f"/eval/{column}"][()], dtype=float)})
        values = target.metric_values(evals)
        if values.size != steps.size:
            return  # row-count mismatch, reported already
        row = int(rows[0])
        # Slack of 1e-9: the writer may derive an error as wrong/total rather
        # than 1 - acc; only a real disagreement is worth a report.
        if not target.reached(values[row : row + 1], slack=1e-9)[0]:
            self._report(
                f"'/target/step' is {step}, but {target.metric} there is {values[row]:.6g}, "
                f"which does not meet {target.describe()}"
            )
            return
        earlier = np.flatnonzero(target.reached(values[:row], slack=-1e-9))
        if earlier.size:
            first = int(earlier[0])
            self._report(
                f"'/target/step' is {step}, but {target.metric} already met {target.describe()} "
                f"at evaluated step {int(steps[first])} ({values[first]:.6g})"
            )


    def _check_model_values(self) -> None:
        """An mse run has no accuracy: NaN in /eval/val_acc and /eval/train_acc, no accuracy target."""
        if self.attrs.get("model_loss") != LOSS_MSE:
            return
        for name in ("/eval/val_acc", "/eval/train_acc"):
            ds = self.good.get(name)
            if ds is None:
                continue
            finite = int(np.isfinite(np.asarray(ds[()], dtype=float)).sum())
            if finite:
                self._report(f"'{name}' has {finite} finite values, expected NaN for an mse run ('model_loss' mse)")
        metric = self.attrs.get("target_metric")
        if metric in METRICS and is_accuracy_metric(str(metric)):
            self._report(
                f"root attribute 'target_metric' is {metric!r}, but an mse run has no accuracy "
                "(expected val_loss, train_loss or none)"
            )


def _value_has_kind(value: Any, kind: str) -> bool:
    if kind == "str":
        return h5io.is_str_value(value)
    if kind == "int":
        return h5io.is_int_value(value)
    return h5io.is_float_value(value)


def _dtype_has_kind(dtype: np.dtype[Any], kind: str) -> bool:
    if kind == "str":
        return h5io.is_string_dtype(dtype)
    if kind == "int":
        return np.issubdtype(dtype, np.integer)
    return np.issubdtype(dtype, np.floating)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array of {value.dtype} with shape {list(value.shape)}"
    return f"{type(value).__name__} {value!r}"


def _shape_text(shape: Shape) -> str:
    return "scalar" if not shape else "[" + ", ".join(str(s) for s in shape) + "]"
