"""Validation accuracy (or loss) and generalization gap per global batch, over seeds.

Two views: final and best accuracy of each run (final_by_batch), and
accuracy at equal epochs (equal_epochs), the fair comparison when runs of
different batch sizes trained for different numbers of epochs. A study of
mse runs has no accuracy: both views then use validation loss (lower is
better) and the loss gap, val_loss - train_loss (score.LOSS).

Equal-epoch comparisons never mix runs that stopped at their target with runs
that trained on, and never let a learning rate that diverged or did not
learn (on any seed) stand for a batch: see equal_epochs.
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
# A run whose score at the common epoch improved on its first evaluation by
# less than this (accuracy fraction; for loss, this share of the first loss)
# did not learn: it diverged without a non-finite loss, or barely moved.
STALLED_ACCURACY: float = 0.01
STALLED_LOSS_SHARE: float = 0.05


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
    lowest val_loss) among the lrs none of whose runs diverged or stalled
    (failed_lrs), and its val_acc_mean/min/max (val_loss_...),
    gap_mean/min/max and seeds. A batch whose every lr failed has no row (it
    is reported as failed, never ranked last).
    excluded: reason -> number of runs left out.
    """

    epoch: float
    per_run: pd.DataFrame
    by_batch: pd.DataFrame
    excluded: dict[str, int]
    # Set when the comparison had to fall back or could not be made (see equal_epochs).
    note: str = ""
    score: Score = ACCURACY
    # Runs with status diverged, and the (global_batch, base_lr) they ran at.
    diverged_runs: tuple[str, ...] = ()
    diverged_lrs: tuple[tuple[int, float], ...] = ()
    # True when targets made a fair equal-epoch comparison impossible: which
    # batch is best is then answered by steps/samples to the target.
    use_steps_to_target: bool = False
    # Compared runs that did not learn (see STALLED_ACCURACY) and their
    # (global_batch, base_lr): like a diverged lr, never a batch's best.
    stalled_runs: tuple[str, ...] = ()
    stalled_lrs: tuple[tuple[int, float], ...] = ()

    @property
    def failed_lrs(self) -> tuple[tuple[int, float], ...]:
        """(batch, lr) that diverged or did not learn on some seed: never a batch's result."""
        return tuple(sorted(set(self.diverged_lrs) | set(self.stalled_lrs)))


_STOPPED: str = "stopped at the target"
_MISSED: str = "trained on after missing its target"
STEPS_TO_TARGET_INSTEAD: str = (
    "which batch is best is answered by steps and samples to the target instead (see Critical batch size)"
)


def equal_epochs(runs: Iterable[Run], score: Optional[Score] = None) -> EqualEpochs:
    """Validation accuracy and gap of each run at the largest epoch all reached.

    `score` says what is compared: validation accuracy, or validation loss
    (default: score.study_score, loss when every run is an mse run).

    Only completed runs are compared; running, diverged, failed and preempted
    runs are counted in `excluded` (diverged ones also in `diverged_runs`).
    Completed runs fall in three kinds: trained on by design (no target stop),
    stopped at their target (target_stop and reached it: they end at
    different epochs by design), and trained on after missing the target
    (target_stop, never reached). The two kinds of a target-stop study are
    never mixed, and neither is compared alone when the other exists: which
    runs stopped is decided by their results, so the rest are the slow
    learning rates. So:

    - no run stopped at its target: every completed run is compared;
    - some stopped and some trained on by design: the by-design runs are
      compared; the target-stop runs are counted in `excluded`;
    - every completed run stopped at its target: they are compared up to the
      epoch where the first of them stopped, and `note` says so;
    - only target-stop runs, some stopped and some not: no comparison is
      made (`use_steps_to_target`), and `note` says the best batch is
      answered by steps/samples to the target instead.

    A compared run whose score at the common epoch improved on its first
    evaluation by less than STALLED_ACCURACY (loss: STALLED_LOSS_SHARE of the
    first loss) did not learn (`stalled_runs`); like a diverged lr, its lr is
    never a batch's best, though its values stay in per_run.

    The common epoch is the smallest last-evaluation epoch among the compared
    runs, and each run's values there are interpolated linearly between its
    evaluations (exact when, as in a normal study, every run evaluates after
    its last step at that epoch).
    """
    runs = list(runs)
    score = score if score is not None else study_score(runs)
    val_col, train_col = score.column, score.train_column
    eligible, excluded, note, impossible = _select(runs)
    diverged = [r for r in runs if r.status.name == "diverged"]
    diverged_names = tuple(r.name for r in diverged)
    diverged_lrs = tuple(sorted({(r.global_batch, float(r.attrs["base_lr"])) for r in diverged}))
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
        return EqualEpochs(math.nan, empty, _by_batch(empty, score), excluded, note, score, diverged_names,
                           diverged_lrs, impossible)
    epoch = min(float(curves[r.name]["epoch"].iloc[-1]) for r in eligible)
    rows = []
    stalled: list[Run] = []
    for run in eligible:
        evals = curves[run.name]
        x = evals["epoch"].to_numpy(dtype=float)
        val = float(np.interp(epoch, x, evals[val_col].to_numpy(dtype=float)))
        if epoch > x[0] and _stalled(float(evals[val_col].iloc[0]), val, score):
            stalled.append(run)
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
    stalled_lrs = tuple(sorted({(r.global_batch, float(r.attrs["base_lr"])) for r in stalled}))
    by_batch = _by_batch(per_run, score, set(diverged_lrs) | set(stalled_lrs))
    return EqualEpochs(epoch, per_run, by_batch, excluded, note, score, diverged_names, diverged_lrs, impossible,
                       tuple(r.name for r in stalled), stalled_lrs)


def _stalled(first: float, value: float, score: Score) -> bool:
    """Whether `value` improved on the run's first evaluation `first` by less than the stall threshold."""
    if score.higher_is_better:
        return value - first < STALLED_ACCURACY
    return first - value < STALLED_LOSS_SHARE * abs(first)


def _select(runs: list[Run]) -> tuple[list[Run], dict[str, int], str, bool]:
    """(runs to compare, reason -> runs left out, note, comparison impossible); see equal_epochs."""
    kinds = {run.name: _exclusion(run) for run in runs}
    excluded: dict[str, int] = {}
    for reason in kinds.values():
        if reason.startswith("status "):
            excluded[reason] = excluded.get(reason, 0) + 1
    stopped = [r for r in runs if kinds[r.name] == _STOPPED]
    missed = [r for r in runs if kinds[r.name] == _MISSED]
    by_design = [r for r in runs if kinds[r.name] == ""]
    if not stopped:
        return by_design + missed, excluded, "", False
    excluded[_STOPPED] = len(stopped)
    if by_design:
        if missed:
            excluded[_MISSED] = len(missed)
        return by_design, excluded, "", False
    if not missed:
        del excluded[_STOPPED]
        note = ("every completed run stopped at its target, so runs are compared up to where the first one "
                "stopped; how soon each batch reaches the target is answered by steps and samples to the "
                "target (see Critical batch size)")
        return stopped, excluded, note, False
    excluded[_MISSED] = len(missed)
    note = (
        f"{len(stopped)} run{'s' if len(stopped) != 1 else ''} stopped at {'their' if len(stopped) != 1 else 'its'} "
        f"target and {len(missed)} trained on after missing it; which runs stopped was decided by their "
        "results, so neither group alone is a fair equal-epoch comparison (the runs left would be the slow "
        f"learning rates) and none is made: {STEPS_TO_TARGET_INSTEAD}"
    )
    return [], excluded, note, True


def _exclusion(run: Run) -> str:
    if run.status.name != "completed":
        return f"status {run.status.name}"
    if int(run.attrs.get("target_stop", 0)) == 1:
        target = stored_target(run.attrs)
        if target is None:
            return ""  # nothing to stop at: it trained on like any other run
        return _STOPPED if steps_to_target(run, target).reached else _MISSED
    return ""


def _by_batch(per_run: pd.DataFrame, score: Score,
              diverged_lrs: Iterable[tuple[int, float]] = ()) -> pd.DataFrame:
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
    # A learning rate that diverged on any seed is not a usable setting.
    skip = set(diverged_lrs)
    keep = [(int(b), float(lr)) not in skip for b, lr in zip(stats["global_batch"], stats["base_lr"])]
    stats = stats[keep]
    if stats.empty:
        return pd.DataFrame(columns=columns)
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
    # 90 % interval of per_doubling (tuning.tuning_study; NaN when none) and
    # what was resampled ("seeds", "evaluations") or why there is none.
    low: float = math.nan
    high: float = math.nan
    interval_from: str = ""

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
    slope = slope_per_doubling(batches, gaps)
    logs = np.log2(np.asarray(batches, dtype=float))
    return GapTrend(batches, gaps, slope, slope * float(logs.max() - logs.min()), flat)


def slope_per_doubling(batches: Iterable[int], values: Iterable[float]) -> float:
    """Least-squares slope of `values` against log2(batch); NaN below two distinct batches.

    Closed form in plain Python: the bootstraps call it thousands of times on a handful of points."""
    xs = [math.log2(b) for b in batches]
    ys = [float(v) for v in values]
    if len(xs) < 2 or len(xs) != len(ys):
        return math.nan
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0.0:
        return math.nan
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
