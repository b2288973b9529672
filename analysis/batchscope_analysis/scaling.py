"""Steps and examples to a target vs global batch, and the critical batch size.

McCandlish et al. (2018) find that the steps S and examples E = S B needed to
reach a fixed target trade off as

    S(B) = S_min + E_min / B

(S_min: steps at infinite batch; E_min: examples at batch 1), and call
B_crit = E_min / S_min the critical batch size: below it, doubling the batch
nearly halves the steps; above it, extra samples per step buy little.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np
import numpy.typing as npt
import pandas as pd

from batchscope_analysis.load import Run
from batchscope_analysis.target import Target, steps_to_target

# Below three batch sizes a two-parameter fit passes through every point and
# cannot show whether S(B) has this form at all.
MIN_FIT_BATCHES: int = 3
_CURVE_POINTS: int = 200


def target_table(runs: Iterable[Run], target: Optional[Target] = None) -> pd.DataFrame:
    """One row per run: steps/samples to `target` (default: the run's own), NaN if not reached.

    `source` is where the answer came from ("/target", "/eval", "no target").
    """
    rows = []
    for run in runs:
        hit = steps_to_target(run, target)
        rows.append({
            "run": run.name,
            "global_batch": run.global_batch,
            "base_lr": float(run.attrs["base_lr"]),
            "seed": int(run.attrs["seed"]),
            "status": run.status.name,
            "steps_to_target": hit.step,
            "samples_to_target": hit.samples,
            "source": hit.source,
        })
    columns = ["run", "global_batch", "base_lr", "seed", "status", "steps_to_target", "samples_to_target", "source"]
    return pd.DataFrame(rows, columns=columns)


def best_by_batch(table: pd.DataFrame) -> pd.DataFrame:
    """Per global batch: the fewest steps to target over learning rates and seeds.

    Columns: global_batch, steps_to_target and samples_to_target of the best
    run (NaN when no run of that batch reached the target), base_lr, seed and
    run of that best run, runs (how many), reached (how many reached), and
    all_steps: every run's steps (NaN = not reached), sorted by (lr, seed).
    The minimum over seeds is what the S(B) literature uses (the best tuned
    run per batch); all_steps shows how much seeds and lrs spread around it.
    """
    rows = []
    for batch, group in table.groupby("global_batch", sort=True):
        group = group.sort_values(["base_lr", "seed"], kind="stable")
        reached = group[group["steps_to_target"].notna()]
        best = reached.loc[reached["steps_to_target"].idxmin()] if len(reached) else None
        rows.append({
            "global_batch": int(batch),
            "steps_to_target": float(best["steps_to_target"]) if best is not None else math.nan,
            "samples_to_target": float(best["samples_to_target"]) if best is not None else math.nan,
            "base_lr": float(best["base_lr"]) if best is not None else math.nan,
            "seed": int(best["seed"]) if best is not None else -1,
            "run": str(best["run"]) if best is not None else "",
            "runs": int(len(group)),
            "reached": int(len(reached)),
            "all_steps": group["steps_to_target"].astype(float).tolist(),
        })
    columns = ["global_batch", "steps_to_target", "samples_to_target", "base_lr", "seed", "run", "runs",
               "reached", "all_steps"]
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class StepsFit:
    """Result of fit_steps_vs_batch. On failure the numbers are NaN and
    `reason` says why in words; `ok` tells the two apart."""

    s_min: float
    e_min: float
    b_crit: float
    n_points: int
    reason: str = ""
    # RMS of (fit - S) / S over the points: how well the form describes the data.
    rel_rms: float = math.nan
    curve_b: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    curve_s: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    @property
    def ok(self) -> bool:
        return not self.reason

    def steps(self, batch: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """S(B) of the fit (NaN on failure)."""
        return self.s_min + self.e_min / np.asarray(batch, dtype=float)


def fit_steps_vs_batch(batch: Iterable[float], steps: Iterable[float]) -> StepsFit:
    """Least-squares fit S(B) = S_min + E_min / B, giving B_crit = E_min / S_min.

    Linear in (S_min, E_min). Residuals are relative, (fit - S) / S: steps to
    a target vary by a roughly constant fraction (eval interval, seeds), and
    absolute residuals would let the smallest batch, with the most steps,
    decide the fit alone and leave S_min (set by the large batches) loose.
    Non-finite points (runs that never reached the target) are left out.
    A fit with S_min <= 0 or E_min <= 0 has no critical batch size: the
    numbers are NaN and the reason says what the data show instead.
    """
    b = np.asarray(list(batch), dtype=float)
    s = np.asarray(list(steps), dtype=float)
    if b.shape != s.shape:
        raise ValueError(f"batch and steps differ in length ({b.size} vs {s.size})")
    keep = np.isfinite(b) & np.isfinite(s) & (b > 0) & (s > 0)
    b, s = b[keep], s[keep]
    nan = math.nan
    distinct = np.unique(b).size
    if distinct < MIN_FIT_BATCHES:
        return StepsFit(nan, nan, nan, int(b.size), reason=(
            f"only {distinct} global batch size{'s' if distinct != 1 else ''} reached the target; "
            f"the S(B) fit needs at least {MIN_FIT_BATCHES}"
        ))
    design = np.column_stack([1.0 / s, 1.0 / (b * s)])
    (s_min, e_min), *_ = np.linalg.lstsq(design, np.ones_like(s), rcond=None)
    s_min, e_min = float(s_min), float(e_min)
    rel_rms = float(np.sqrt(np.mean(((s_min + e_min / b) - s) ** 2 / s**2)))
    if s_min <= 0:
        return StepsFit(nan, nan, nan, int(b.size), rel_rms=rel_rms, reason=(
            f"the fit gives S_min = {s_min:.3g} <= 0: steps keep falling like 1/B up to the largest batch "
            f"measured ({b.max():g}), so B_crit lies above it"
        ))
    if e_min <= 0:
        return StepsFit(nan, nan, nan, int(b.size), rel_rms=rel_rms, reason=(
            f"the fit gives E_min = {e_min:.3g} <= 0: steps do not fall with batch size from the smallest "
            f"batch measured ({b.min():g}), so B_crit lies below it"
        ))
    curve_b = np.geomspace(b.min() / 2.0, b.max() * 2.0, _CURVE_POINTS)
    return StepsFit(
        s_min=s_min, e_min=e_min, b_crit=e_min / s_min, n_points=int(b.size), rel_rms=rel_rms,
        curve_b=curve_b, curve_s=s_min + e_min / curve_b,
    )


def fit_study(runs: Iterable[Run], target: Optional[Target]) -> tuple[pd.DataFrame, pd.DataFrame, StepsFit]:
    """Steps-to-target per run, best per batch, and the S(B) fit of the bests."""
    table = target_table(runs, target)
    best = best_by_batch(table)
    if target is None:
        nan = math.nan
        return table, best, StepsFit(nan, nan, nan, 0, reason="no target to measure steps against")
    if not best["reached"].any():
        nan = math.nan
        return table, best, StepsFit(nan, nan, nan, 0, reason=f"no run reached the target ({target.describe()})")
    return table, best, fit_steps_vs_batch(best["global_batch"], best["steps_to_target"])
