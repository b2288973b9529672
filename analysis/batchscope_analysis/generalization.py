"""Validation accuracy (or loss) and generalization gap per global batch, over seeds.

Two views: final and best accuracy of each run (final_by_batch), and
accuracy at equal epochs (equal_epochs), the fair comparison when runs of
different batch sizes trained for different numbers of epochs. A study of
mse runs has no accuracy: both views then use validation loss (lower is
better) and the loss gap, val_loss - train_loss (score.LOSS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from batchscope_analysis.load import Run
from batchscope_analysis.score import ACCURACY, LOSS, Score, study_score
from batchscope_analysis.target import stored_target, steps_to_target

# A gap change below this (accuracy fraction, over the measured batch range)
# is called flat: a fraction of a point is within typical seed spread.
FLAT_GAP_CHANGE: float = 0.005
# The same for a loss gap, as a share of the typical validation loss: loss
# units differ between problems, so an absolute threshold would not do.
FLAT_LOSS_GAP_SHARE: float = 0.02


def final_by_batch(table: pd.DataFrame, score: Optional[Score] = None) -> pd.DataFrame:
    """Mean, min and max over seeds of final and best val accuracy and gap per (lr, batch).

    Columns `<column>_mean/min/max`, `best_<column>_mean/min/max` and
    `gap_mean/min/max`, where column is val_acc, or val_loss for score.LOSS
    (default: LOSS when the runs table has no accuracy columns).
    Runs still in progress are left out: their "final" values are not final
    and would pull the seed mean towards early-training numbers.
    """
    if score is None:
        score = ACCURACY if ACCURACY.final in table.columns else LOSS
    done = table[table["status"] != "running"]
    grouped = done.groupby(["base_lr", "global_batch"])
    col = score.column
    stats = grouped.agg(**{
        f"{col}_mean": (score.final, "mean"),
        f"{col}_min": (score.final, "min"),
        f"{col}_max": (score.final, "max"),
        f"best_{col}_mean": (score.best, "mean"),
        f"best_{col}_min": (score.best, "min"),
        f"best_{col}_max": (score.best, "max"),
        "gap_mean": (score.gap, "mean"),
        "gap_min": (score.gap, "min"),
        "gap_max": (score.gap, "max"),
        "seeds": ("seed", "nunique"),
    })
    return stats.reset_index()


@dataclass(frozen=True)
class EqualEpochs:
    """Accuracy (or, for a study of mse runs, loss) of every eligible run at one common epoch.

    per_run: run, global_batch, base_lr, seed, val_acc, train_acc, gap
    (score.LOSS: val_loss, train_loss, gap = val_loss - train_loss).
    by_batch: per global batch, the lr with the best seed-mean val_acc (the
    lowest val_loss) and its val_acc_mean/min/max (val_loss_...),
    gap_mean/min/max and seeds.
    excluded: reason -> number of runs left out.
    """

    epoch: float
    per_run: pd.DataFrame
    by_batch: pd.DataFrame
    excluded: dict[str, int]
    # Set when the comparison had to fall back (see equal_epochs).
    note: str = ""
    score: Score = ACCURACY


_STOPPED: str = "stopped at the target"


def equal_epochs(runs: Iterable[Run], score: Optional[Score] = None) -> EqualEpochs:
    """Validation accuracy and gap of each run at the largest epoch all reached.

    `score` says what is compared: validation accuracy, or validation loss
    (default: score.study_score, loss when every run is an mse run).

    Eligible runs are completed ones that did not stop early at a target
    (those end at different epochs by design); running, diverged, failed and
    preempted runs are counted in `excluded`. If every completed run stopped
    at its target (a steps-to-result study), they are compared anyway, up to
    the epoch where the first of them stopped, and `note` says so. The
    common epoch is the smallest last-evaluation epoch among the compared
    runs, and each run's values there are interpolated linearly between its
    evaluations (exact when, as in a normal study, every run evaluates after
    its last step at that epoch).
    """
    runs = list(runs)
    score = score if score is not None else study_score(runs)
    val_col, train_col = score.column, score.train_column
    eligible: list[Run] = []
    excluded: dict[str, int] = {}
    for run in runs:
        reason = _exclusion(run)
        if reason:
            excluded[reason] = excluded.get(reason, 0) + 1
        else:
            eligible.append(run)
    note = ""
    if not eligible and excluded.get(_STOPPED):
        eligible = [r for r in runs if _exclusion(r) == _STOPPED]
        del excluded[_STOPPED]
        note = "every completed run stopped at its target, so runs are compared up to where the first one stopped"
    curves = {}
    for run in eligible:
        evals = run.eval[np.isfinite(run.eval[val_col]) & np.isfinite(run.eval[train_col])]
        if len(evals):
            curves[run.name] = evals
        else:
            excluded["no finite evaluation"] = excluded.get("no finite evaluation", 0) + 1
    eligible = [r for r in eligible if r.name in curves]
    columns = ["run", "global_batch", "base_lr", "seed", val_col, train_col, "gap"]
    if not eligible:
        empty = pd.DataFrame(columns=columns)
        return EqualEpochs(math.nan, empty, _by_batch(empty, score), excluded, note, score)
    epoch = min(float(curves[r.name]["epoch"].iloc[-1]) for r in eligible)
    rows = []
    for run in eligible:
        evals = curves[run.name]
        x = evals["epoch"].to_numpy(dtype=float)
        val = float(np.interp(epoch, x, evals[val_col].to_numpy(dtype=float)))
        train = float(np.interp(epoch, x, evals[train_col].to_numpy(dtype=float)))
        rows.append({
            "run": run.name,
            "global_batch": run.global_batch,
            "base_lr": float(run.attrs["base_lr"]),
            "seed": int(run.attrs["seed"]),
            val_col: val,
            train_col: train,
            "gap": score.gap_of(val, train),
        })
    per_run = pd.DataFrame(rows, columns=columns)
    return EqualEpochs(epoch, per_run, _by_batch(per_run, score), excluded, note, score)


def _exclusion(run: Run) -> str:
    if run.status.name != "completed":
        return f"status {run.status.name}"
    if int(run.attrs.get("target_stop", 0)) == 1 and steps_to_target(run, stored_target(run.attrs)).reached:
        return _STOPPED
    return ""


def _by_batch(per_run: pd.DataFrame, score: Score) -> pd.DataFrame:
    col = score.column
    columns = ["global_batch", "base_lr", f"{col}_mean", f"{col}_min", f"{col}_max", "gap_mean", "gap_min",
               "gap_max", "seeds"]
    if per_run.empty:
        return pd.DataFrame(columns=columns)
    stats = per_run.groupby(["global_batch", "base_lr"]).agg(**{
        f"{col}_mean": (col, "mean"),
        f"{col}_min": (col, "min"),
        f"{col}_max": (col, "max"),
        "gap_mean": ("gap", "mean"),
        "gap_min": ("gap", "min"),
        "gap_max": ("gap", "max"),
        "seeds": ("seed", "nunique"),
    }).reset_index()
    # The lr that served each batch best: the comparison is between batch
    # sizes each at its own tuned lr, as a user would run them.
    by = stats.groupby("global_batch")[f"{col}_mean"]
    best = stats.loc[by.idxmax() if score.higher_is_better else by.idxmin()]
    return best[columns].sort_values("global_batch").reset_index(drop=True)


@dataclass(frozen=True)
class GapTrend:
    """Least-squares slope of gap vs log2(batch), and the end points."""

    batches: list[int]
    gaps: list[float]
    per_doubling: float  # change of the gap (fraction, or loss units) per doubling of B
    change: float  # fitted change from the smallest to the largest batch
    # A change smaller than this is "flat" (see FLAT_GAP_CHANGE, FLAT_LOSS_GAP_SHARE).
    flat_below: float = FLAT_GAP_CHANGE

    @property
    def direction(self) -> str:
        if not math.isfinite(self.change):
            return "unknown"
        if abs(self.change) < self.flat_below:
            return "flat"
        return "grows" if self.change > 0 else "shrinks"


def gap_trend(by_batch: pd.DataFrame, score: Optional[Score] = None) -> GapTrend:
    """Trend of the seed-mean gap over global batch (EqualEpochs.by_batch).

    For a loss gap (score.LOSS; the default when by_batch has val_loss
    columns) a change below FLAT_LOSS_GAP_SHARE of the median seed-mean
    validation loss counts as flat.
    """
    if score is None:
        score = LOSS if "val_loss_mean" in by_batch.columns else ACCURACY
    data = by_batch[np.isfinite(by_batch["gap_mean"].astype(float))]
    batches = [int(b) for b in data["global_batch"]]
    gaps = [float(g) for g in data["gap_mean"]]
    flat = FLAT_GAP_CHANGE
    if score == LOSS and len(data):
        flat = FLAT_LOSS_GAP_SHARE * abs(float(np.median(data["val_loss_mean"].to_numpy(dtype=float))))
    if len(batches) < 2:
        return GapTrend(batches, gaps, math.nan, math.nan, flat)
    logs = np.log2(np.asarray(batches, dtype=float))
    slope = float(np.polyfit(logs, np.asarray(gaps), 1)[0])
    return GapTrend(batches, gaps, slope, slope * float(logs.max() - logs.min()), flat)
