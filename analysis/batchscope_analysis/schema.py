"""Checks a run file against the `batchscope-run` schema (docs/run-file.md).

The checker reports every problem it can find instead of stopping at the
first, so one run of `batchscope-analysis check` shows the C++ writer all that
is wrong. Checks that depend on a missing or malformed item are skipped rather
than reported twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import h5py
import numpy as np

from batchscope_analysis import h5io
from batchscope_analysis.errors import RunFileError
from batchscope_analysis.status import STATUS_NAMES

SCHEMA_NAME: str = "batchscope-run"
SCHEMA_VERSION: int = 1

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
}

# Shape entries are fixed sizes or symbols: "n" = ranks, "T" = rows of
# /train and /gns, "E" = rows of /eval. Every use of a symbol must agree.
Shape = tuple[Union[int, str], ...]
DATASETS: dict[str, dict[str, tuple[Shape, str]]] = {
    "layout": {
        "world_ranks": (("n",), "int"),
        "hosts": (("n",), "str"),
        "devices": (("n",), "str"),
        "batch_per_rank": (("n",), "int"),
        "global_batch": ((), "int"),
        "train_size": ((), "int"),
        "test_size": ((), "int"),
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
    },
}

_SYMBOL_MEANING: dict[str, str] = {
    "n": "rank count",
    "T": "row count",
    "E": "row count",
}


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
        return self.problems

    def _report(self, message: str) -> None:
        self.problems.append(message)

    def _check_root_attrs(self) -> None:
        for name, kind in ROOT_ATTRS.items():
            if name not in self.f.attrs:
                self._report(f"missing root attribute '{name}'")
                continue
            value = self.f.attrs[name]
            if not _value_has_kind(value, kind):
                self._report(f"root attribute '{name}' should be a scalar {kind}, got {_describe(value)}")
                continue
            self.attrs[name] = h5io.to_python(value)

        if "schema" in self.attrs and self.attrs["schema"] != SCHEMA_NAME:
            self._report(f"root attribute 'schema' is {self.attrs['schema']!r}, expected {SCHEMA_NAME!r}")
        if "schema_version" in self.attrs and self.attrs["schema_version"] != SCHEMA_VERSION:
            self._report(
                f"root attribute 'schema_version' is {self.attrs['schema_version']}, expected {SCHEMA_VERSION}"
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

    def _check_datasets(self) -> None:
        for group, members in DATASETS.items():
            if group not in self.f or not isinstance(self.f[group], h5py.Group):
                self._report(f"missing group '/{group}'")
                continue
            for name, (shape, kind) in members.items():
                where = f"/{group}/{name}"
                obj = self.f[group].get(name)
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

    def _check_samples(self, group: str, steps: np.ndarray) -> None:
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


def _value_has_kind(value: Any, kind: str) -> bool:
    if kind == "str":
        return h5io.is_str_value(value)
    if kind == "int":
        return h5io.is_int_value(value)
    return h5io.is_float_value(value)


def _dtype_has_kind(dtype: np.dtype, kind: str) -> bool:
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
