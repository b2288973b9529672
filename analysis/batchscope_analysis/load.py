"""Loads run files into pandas tables, and summarises a study as one row per run.

Files of schema version 1 (before micro-batches, per-layer norms and
/target) still load: the missing parts are filled with what they meant then
(one micro-batch per rank, no target), so older studies stay analysable.
`check` still reports them as out of date. Files written before the model
attributes (`model_loss`, `model_init`, `model_buffers`) get their defaults
(score.MODEL_ATTR_DEFAULTS): a built-in model trained with cross-entropy.

Files of schema version 2 (before eval.sharpness) load with the sharpness
columns of Run.eval (SHARPNESS_COLUMNS) NaN, as a run with it off writes them.

Runs trained with `model.loss: mse` have no accuracy; their study's runs
table has loss columns in place of the accuracy ones (runs_table_columns).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Optional, Union

import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd

from batchscope_analysis import h5io
from batchscope_analysis.errors import RunFileError
from batchscope_analysis.score import ACCURACY, LOSS, LOSS_MSE, MODEL_ATTR_DEFAULTS, Score, study_score
from batchscope_analysis.status import status_name
from batchscope_analysis.target import NO_TARGET, Target, stored_target, steps_to_target

PathLike = Union[str, Path]

# Column order of runs_table; also what `summary` prints.
RUNS_TABLE_COLUMNS: tuple[str, ...] = (
    "run",
    "study",
    "global_batch",
    "ranks",
    "microbatches",
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
    "target_metric",
    "target_value",
    "steps_to_target",
    "samples_to_target",
    "b_simple_final",
    "b_simple_median",
)
# The accuracy columns, and what replaces them in a study of mse runs
# (no accuracy): best (lowest) validation loss and the loss gap.
ACCURACY_COLUMNS: tuple[str, ...] = ("final_val_acc", "best_val_acc", "final_train_acc", "gap")


def _regression_columns() -> tuple[str, ...]:
    """RUNS_TABLE_COLUMNS without the accuracy columns, with the loss ones in their place."""
    out: list[str] = []
    for c in RUNS_TABLE_COLUMNS:
        if c in ACCURACY_COLUMNS:
            continue
        out.append(c)
        if c == "final_val_loss":
            out.append("best_val_loss")
        elif c == "final_train_loss":
            out.append("loss_gap")
    return tuple(out)


REGRESSION_TABLE_COLUMNS: tuple[str, ...] = _regression_columns()


class Status(NamedTuple):
    name: str
    step: int


class StoredTarget(NamedTuple):
    """/target as written: the first evaluated step meeting the run's own target, or -1."""

    step: int
    samples: int


@dataclass
class LayerNorms:
    """Per-layer squared gradient norms (/gns/sqnorm_layer_*), rows aligned with Run.gns.

    Kept as arrays rather than DataFrame columns: n*m*L columns would swamp
    the gns table, and per-layer analysis wants the [T, K, L] shape anyway.
    """

    names: list[str]
    numel: npt.NDArray[np.integer[Any]]
    micro: Optional[npt.NDArray[np.floating[Any]]]  # [T, K, L]: micro-batch k, layer l
    global_: Optional[npt.NDArray[np.floating[Any]]]  # [T, L]


@dataclass
class Run:
    """One run file, read in full.

    Per-rank and per-micro-batch columns (/train/loss_rank, /gns/sqnorm_local,
    /gns/sqnorm_micro) are split into `loss_rank_<i>`, `sqnorm_local_<i>` and
    `sqnorm_micro_<k>` so every table stays flat.
    """

    path: Path
    attrs: dict[str, Any]
    layout: dict[str, Any]
    status: Status
    train: pd.DataFrame
    gns: pd.DataFrame
    eval: pd.DataFrame
    target: StoredTarget = StoredTarget(-1, -1)
    layer_norms: Optional[LayerNorms] = None

    @property
    def name(self) -> str:
        return str(self.attrs.get("run", self.path.stem))

    @property
    def global_batch(self) -> int:
        return int(self.attrs["global_batch"])

    @property
    def microbatches(self) -> int:
        return int(self.attrs.get("microbatches", 1))

    @property
    def train_size(self) -> int:
        return int(self.layout["train_size"])

    @property
    def batch_micro(self) -> npt.NDArray[np.int64]:
        """b_k, the n*m small batches of the noise estimator, rank-major."""
        return np.asarray(self.layout["batch_micro"], dtype=np.int64)

    def sqnorm_micro(self) -> npt.NDArray[np.float64]:
        """s_k per step as a [T, n*m] float64 array."""
        columns = [f"sqnorm_micro_{k}" for k in range(len(self.batch_micro))]
        values: npt.NDArray[np.float64] = self.gns[columns].to_numpy(dtype=np.float64)
        return values

    @property
    def own_target(self) -> Optional[Target]:
        return stored_target(self.attrs)

    @property
    def model_loss(self) -> str:
        """`cross_entropy` or `mse` (root attribute `model_loss`)."""
        return str(self.attrs.get("model_loss", MODEL_ATTR_DEFAULTS["model_loss"]))

    @property
    def has_accuracy(self) -> bool:
        """False for mse runs: their val_acc and train_acc are NaN by definition."""
        return self.model_loss != LOSS_MSE

    @property
    def model_init(self) -> str:
        """`builtin` (mlp, cnn), `file` (a TorchScript module's saved weights) or `seeded`."""
        return str(self.attrs.get("model_init", MODEL_ATTR_DEFAULTS["model_init"]))

    @property
    def buffers(self) -> list[str]:
        """The model's buffers (root attribute `model_buffers`), e.g. BatchNorm running statistics.

        Non-empty means per-rank running statistics: each rank normalizes its
        own slice of the batch, so the split of a global batch over ranks is
        no longer exactly invisible (docs/run-file.md).
        """
        text = str(self.attrs.get("model_buffers", MODEL_ATTR_DEFAULTS["model_buffers"]))
        return [name.strip() for name in text.split(",") if name.strip()]


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
    """Every run under `paths` (run files, study folders, or several of them)."""
    return [load_run(p) for p in find_runs(paths)]


# /eval columns of schema version 3 (eval.sharpness; NaN where not measured).
# Every Run.eval has them: a version-2 file's are NaN (and 0 iterations).
SHARPNESS_COLUMNS: tuple[str, ...] = ("sharpness", "sharpness_iterations", "sharpness_residual")

# Root attributes the tables and plots cannot do without.
_REQUIRED_ATTRS: tuple[str, ...] = ("global_batch", "ranks", "base_lr", "peak_lr", "seed")


def _read_run(path: Path, f: h5py.File) -> Run:
    attrs = {name: h5io.to_python(value) for name, value in f.attrs.items()}
    for name in _REQUIRED_ATTRS:
        if name not in attrs:
            raise KeyError(f"missing root attribute '{name}'")
    layout = {name: h5io.read_dataset(ds) for name, ds in f["layout"].items()}
    _fill_version_1(attrs, layout)
    for name, default in MODEL_ATTR_DEFAULTS.items():
        attrs.setdefault(name, default)
    status = Status(status_name(int(f["status/code"][0])), int(f["status/step"][0]))
    train = _read_rows(f["train"], ["step", "samples", "epoch", "lr", "loss", "loss_rank", "wall_s", "step_ms"])
    gns_names = ["sqnorm_local", "sqnorm_global", "g2_est", "trsigma_est", "b_simple"]
    has_micro = "sqnorm_micro" in f["gns"]
    gns = _read_rows(f["gns"], gns_names + (["sqnorm_micro"] if has_micro else []))
    if not has_micro:
        # Version 1: the small batches of the estimator were the ranks.
        for i in range(int(attrs["ranks"])):
            gns[f"sqnorm_micro_{i}"] = gns[f"sqnorm_local_{i}"]
    # A live writer may have extended /train but not yet /gns (or the other
    # way) when we look; the shared prefix is what is consistent.
    rows = min(len(train), len(gns))
    train = train.iloc[:rows].reset_index(drop=True)
    gns = gns.iloc[:rows].reset_index(drop=True)
    gns.insert(0, "step", train["step"].to_numpy())
    eval_names = ["step", "samples", "epoch", "val_loss", "val_acc", "train_loss", "train_acc"]
    has_sharpness = all(name in f["eval"] for name in SHARPNESS_COLUMNS)
    evals = _read_rows(f["eval"], eval_names + (list(SHARPNESS_COLUMNS) if has_sharpness else []))
    if not has_sharpness:
        # Version 2 (before eval.sharpness): not measured, as a version-3 run with it off writes.
        evals["sharpness"] = np.nan
        evals["sharpness_iterations"] = np.zeros(len(evals), dtype=np.int32)
        evals["sharpness_residual"] = np.nan
    target = StoredTarget(-1, -1)
    if "target" in f:
        target = StoredTarget(int(f["target/step"][0]), int(f["target/samples"][0]))
    return Run(
        path=path, attrs=attrs, layout=layout, status=status, train=train, gns=gns, eval=evals, target=target,
        layer_norms=_read_layer_norms(f, layout, rows),
    )


def _fill_version_1(attrs: dict[str, Any], layout: dict[str, Any]) -> None:
    """Defaults for what version 1 files lack, matching what version 1 meant."""
    attrs.setdefault("microbatches", 1)
    attrs.setdefault("target_metric", NO_TARGET)
    attrs.setdefault("target_value", float("nan"))
    attrs.setdefault("target_stop", 0)
    if "batch_micro" not in layout and "batch_per_rank" in layout:
        layout["batch_micro"] = np.asarray(layout["batch_per_rank"])
    layout.setdefault("layers", [])
    layout.setdefault("layer_numel", np.zeros(0, dtype=np.int32))


def _read_layer_norms(f: h5py.File, layout: dict[str, Any], rows: int) -> Optional[LayerNorms]:
    gns = f["gns"]
    if "sqnorm_layer_micro" not in gns and "sqnorm_layer_global" not in gns:
        return None
    names = list(layout.get("layers", []))
    count = len(names)
    micro = glob = None
    if "sqnorm_layer_micro" in gns:
        data = np.asarray(gns["sqnorm_layer_micro"][:rows])
        micro = data.reshape(data.shape[0], -1, count) if count else None
    if "sqnorm_layer_global" in gns:
        glob = np.asarray(gns["sqnorm_layer_global"][:rows])
    return LayerNorms(names=names, numel=np.asarray(layout.get("layer_numel", [])), micro=micro, global_=glob)


def _read_rows(group: h5py.Group, names: list[str]) -> pd.DataFrame:
    """Datasets of one group as columns, cut to the shortest (see _read_run)."""
    arrays = {name: np.asarray(group[name][()]) for name in names}
    rows = min(a.shape[0] for a in arrays.values())
    columns: dict[str, npt.NDArray[Any]] = {}
    for name, array in arrays.items():
        array = array[:rows]
        if array.ndim == 2:
            for i in range(array.shape[1]):
                columns[f"{name}_{i}"] = array[:, i]
        else:
            columns[name] = array
    return pd.DataFrame(columns)


def runs_table_columns(score: Score) -> tuple[str, ...]:
    """The runs table's columns for a study judged by `score` (score.study_score)."""
    return REGRESSION_TABLE_COLUMNS if score == LOSS else RUNS_TABLE_COLUMNS


def runs_table(runs: Iterable[Run], target: Optional[Target] = None) -> pd.DataFrame:
    """One row per run with its configuration and final results.

    Columns: RUNS_TABLE_COLUMNS, or REGRESSION_TABLE_COLUMNS when every run
    is an mse run (no accuracy): the accuracy columns are left out, and the
    lowest validation loss and the loss gap (val_loss - train_loss at the
    last evaluation) take their place.

    "final" is the last row written, so for a run still going it is the
    latest value, not the end result; the status column says which.
    steps_to_target is measured against `target`, or each run's own stored
    target when None; target_metric/target_value say which was used, and
    steps/samples_to_target are NaN when it was not reached.
    b_simple_final/_median: each run's b_simple re-smoothed from its raw norms
    over the study's window in samples (noise.study_window, docs/metrics.md),
    the last finite value and the median over the second half of its samples
    (early training has a much smaller noise scale, and the EMA needs time to
    settle): the numbers the report's per-batch B_simple is the median of.
    """
    from batchscope_analysis.noise import study_window  # noise builds on this module

    runs = list(runs)
    columns = runs_table_columns(study_score(runs))
    window = study_window(runs)
    return pd.DataFrame([_run_row(run, target, window) for run in runs], columns=list(columns))


def train_table(runs: Iterable[Run]) -> pd.DataFrame:
    """Tidy per-step table of all runs: /train and /gns columns plus the run's
    name, global batch, base lr and seed, one row per (run, step)."""
    frames = []
    for run in runs:
        frame = pd.concat([run.train, run.gns.drop(columns=["step"])], axis=1)
        frames.append(_with_run_keys(frame, run))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def eval_table(runs: Iterable[Run]) -> pd.DataFrame:
    """Tidy per-evaluation table of all runs, with gap = train_acc - val_acc and
    loss_gap = val_loss - train_loss, and the sharpness columns (NaN where not measured). When no run has accuracy (all mse), the
    accuracy columns (val_acc, train_acc, gap) are left out."""
    runs = list(runs)
    frames = []
    for run in runs:
        frame = run.eval.copy()
        frame["gap"] = frame["train_acc"] - frame["val_acc"]
        frame["loss_gap"] = frame["val_loss"] - frame["train_loss"]
        frames.append(_with_run_keys(frame, run))
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    if study_score(runs) == LOSS:
        table = table.drop(columns=["val_acc", "train_acc", "gap"])
    return table


def _with_run_keys(frame: pd.DataFrame, run: Run) -> pd.DataFrame:
    keys = {
        "run": run.name,
        "global_batch": run.global_batch,
        "base_lr": float(run.attrs["base_lr"]),
        "seed": int(run.attrs["seed"]),
    }
    for i, (name, value) in enumerate(keys.items()):
        frame.insert(i, name, value)
    return frame


def b_simple_stats(run: Run) -> tuple[float, float]:
    """(last finite b_simple, median of finite b_simple over the second half of the rows)."""
    nan = float("nan")
    values = run.gns["b_simple"].to_numpy(dtype=float)
    steps = run.gns["step"].to_numpy(dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        return nan, nan
    final = float(values[finite][-1])
    late = finite & (steps > steps[-1] / 2.0)
    median = float(np.median(values[late])) if late.any() else nan
    return final, median


def _run_row(run: Run, target: Optional[Target], window: float) -> dict[str, Any]:
    nan = float("nan")
    train, evals = run.train, run.eval
    steps = int(train["step"].iloc[-1]) if len(train) else 0
    samples = int(train["samples"].iloc[-1]) if len(train) else 0
    wall = float(train["wall_s"].iloc[-1]) if len(train) else nan
    last = evals.iloc[-1] if len(evals) else None
    final_val_acc = float(last["val_acc"]) if last is not None else nan
    final_train_acc = float(last["train_acc"]) if last is not None else nan
    final_val_loss = float(last["val_loss"]) if last is not None else nan
    final_train_loss = float(last["train_loss"]) if last is not None else nan
    used = target if target is not None else run.own_target
    hit = steps_to_target(run, used)
    from batchscope_analysis.noise import run_b_simple_stats

    b_final, b_median = run_b_simple_stats(run, window) if len(run.gns) else (float("nan"), float("nan"))
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
        "best_val_acc": _best(evals, ACCURACY),
        "final_train_acc": final_train_acc,
        "gap": ACCURACY.gap_of(final_val_acc, final_train_acc),
        "final_val_loss": final_val_loss,
        "best_val_loss": _best(evals, LOSS),
        "final_train_loss": final_train_loss,
        "loss_gap": LOSS.gap_of(final_val_loss, final_train_loss),
        "samples_per_s": samples / wall if wall > 0 else nan,
        "microbatches": run.microbatches,
        "target_metric": used.metric if used is not None else NO_TARGET,
        "target_value": used.value if used is not None else nan,
        "steps_to_target": hit.step,
        "samples_to_target": hit.samples,
        "b_simple_final": b_final,
        "b_simple_median": b_median,
    }


def _best(evals: pd.DataFrame, score: Score) -> float:
    """Best finite value of score.column over the evaluations (max accuracy, min loss); NaN if none."""
    values = evals[score.column].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if not values.size:
        return float("nan")
    return float(values.max() if score.higher_is_better else values.min())
