"""Loads run files into pandas tables, and summarises a study as one row per run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Union

import h5py
import numpy as np
import pandas as pd

from batchscope_analysis import h5io
from batchscope_analysis.errors import RunFileError
from batchscope_analysis.status import status_name

PathLike = Union[str, Path]

# Column order of runs_table; also what `summary` prints.
RUNS_TABLE_COLUMNS: tuple[str, ...] = (
    "run",
    "study",
    "global_batch",
    "ranks",
    "base_lr",
    "peak_lr",
    "seed",
    "status",
    "steps",
    "samples",
    "final_val_acc",
    "best_val_acc",
    "final_train_acc",
    "gap",
    "final_val_loss",
    "final_train_loss",
    "samples_per_s",
)


class Status(NamedTuple):
    name: str
    step: int


@dataclass
class Run:
    """One run file, read in full.

    Per-rank columns (/train/loss_rank, /gns/sqnorm_local) are split into
    `loss_rank_<i>` and `sqnorm_local_<i>` so every table stays flat.
    """

    path: Path
    attrs: dict[str, Any]
    layout: dict[str, Any]
    status: Status
    train: pd.DataFrame
    gns: pd.DataFrame
    eval: pd.DataFrame

    @property
    def name(self) -> str:
        return str(self.attrs.get("run", self.path.stem))


def find_runs(paths: Union[PathLike, Iterable[PathLike]]) -> list[Path]:
    """Run files named by `paths`: .h5 files as given, folders searched.

    A folder is searched in `runs/*.h5` (a study output folder) and `*.h5`
    (a folder of run files). Every path must exist and every folder must hold
    at least one run file, so a typo is reported instead of silently ignored.
    """
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            in_dir = sorted(set(path.glob("runs/*.h5")) | set(path.glob("*.h5")))
            in_dir = [p for p in in_dir if p.is_file()]
            if not in_dir:
                raise RunFileError(path, "no run files (*.h5 or runs/*.h5) found")
            found.extend(in_dir)
        else:
            raise RunFileError(path, "no such file or directory")
    # The same file named twice (a dir and a file in it) is loaded once.
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def load_run(path: PathLike) -> Run:
    """Reads one run file; raises RunFileError if it is unreadable or lacks data."""
    path = Path(path)
    with h5io.open_run_file(path) as f:
        try:
            return _read_run(path, f)
        except OSError as exc:
            # Damaged data blocks surface only when read; name the file.
            raise RunFileError(path, f"read error ({exc})") from exc
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            # str(KeyError) wraps its message in quotes; args[0] reads better.
            detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise RunFileError(path, f"malformed run file ({detail}); run `check` for details") from exc


def load_study(paths: Union[PathLike, Iterable[PathLike]]) -> list[Run]:
    return [load_run(p) for p in find_runs(paths)]


# Root attributes the tables and plots cannot do without.
_REQUIRED_ATTRS: tuple[str, ...] = ("global_batch", "ranks", "base_lr", "peak_lr", "seed")


def _read_run(path: Path, f: h5py.File) -> Run:
    attrs = {name: h5io.to_python(value) for name, value in f.attrs.items()}
    for name in _REQUIRED_ATTRS:
        if name not in attrs:
            raise KeyError(f"missing root attribute '{name}'")
    layout = {name: h5io.read_dataset(ds) for name, ds in f["layout"].items()}
    status = Status(status_name(int(f["status/code"][0])), int(f["status/step"][0]))
    train = _read_rows(f["train"], ["step", "samples", "epoch", "lr", "loss", "loss_rank", "wall_s", "step_ms"])
    gns = _read_rows(f["gns"], ["sqnorm_local", "sqnorm_global", "g2_est", "trsigma_est", "b_simple"])
    # A live writer may have extended /train but not yet /gns (or the other
    # way) when we look; the shared prefix is what is consistent.
    rows = min(len(train), len(gns))
    train = train.iloc[:rows].reset_index(drop=True)
    gns = gns.iloc[:rows].reset_index(drop=True)
    gns.insert(0, "step", train["step"].to_numpy())
    evals = _read_rows(f["eval"], ["step", "samples", "epoch", "val_loss", "val_acc", "train_loss", "train_acc"])
    return Run(path=path, attrs=attrs, layout=layout, status=status, train=train, gns=gns, eval=evals)


def _read_rows(group: h5py.Group, names: list[str]) -> pd.DataFrame:
    """Datasets of one group as columns, cut to the shortest (see _read_run)."""
    arrays = {name: np.asarray(group[name][()]) for name in names}
    rows = min(a.shape[0] for a in arrays.values())
    columns: dict[str, np.ndarray] = {}
    for name, array in arrays.items():
        array = array[:rows]
        if array.ndim == 2:
            for i in range(array.shape[1]):
                columns[f"{name}_{i}"] = array[:, i]
        else:
            columns[name] = array
    return pd.DataFrame(columns)


def runs_table(runs: Iterable[Run]) -> pd.DataFrame:
    """One row per run with its configuration and final results.

    "final" is the last row written, so for a run still going it is the
    latest value, not the end result; the status column says which.
    """
    return pd.DataFrame([_run_row(run) for run in runs], columns=list(RUNS_TABLE_COLUMNS))


def _run_row(run: Run) -> dict[str, Any]:
    nan = float("nan")
    train, evals = run.train, run.eval
    steps = int(train["step"].iloc[-1]) if len(train) else 0
    samples = int(train["samples"].iloc[-1]) if len(train) else 0
    wall = float(train["wall_s"].iloc[-1]) if len(train) else nan
    last = evals.iloc[-1] if len(evals) else None
    final_val_acc = float(last["val_acc"]) if last is not None else nan
    final_train_acc = float(last["train_acc"]) if last is not None else nan
    return {
        "run": run.name,
        "study": run.attrs.get("study", ""),
        "global_batch": int(run.attrs["global_batch"]),
        "ranks": int(run.attrs["ranks"]),
        "base_lr": float(run.attrs["base_lr"]),
        "peak_lr": float(run.attrs["peak_lr"]),
        "seed": int(run.attrs["seed"]),
        "status": run.status.name,
        "steps": steps,
        "samples": samples,
        "final_val_acc": final_val_acc,
        "best_val_acc": float(np.nanmax(evals["val_acc"])) if evals["val_acc"].notna().any() else nan,
        "final_train_acc": final_train_acc,
        "gap": final_train_acc - final_val_acc,
        "final_val_loss": float(last["val_loss"]) if last is not None else nan,
        "final_train_loss": float(last["train_loss"]) if last is not None else nan,
        "samples_per_s": samples / wall if wall > 0 else nan,
    }
