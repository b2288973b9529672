"""The answers a batch-size study is run for, as numbers and plain sentences.

Which batch generalizes best at equal epochs, the measured gradient noise
scale, the critical batch size from steps-to-target, and how the
generalization gap moves with batch size (docs/DESIGN "Who uses it"). The
report renders these; they are computed here so they can be tested and
reused without HTML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional

import pandas as pd

from batchscope_analysis.generalization import EqualEpochs, GapTrend, equal_epochs, gap_trend
from batchscope_analysis.load import Run
from batchscope_analysis.noise import b_simple_summary
from batchscope_analysis.scaling import StepsFit, fit_study
from batchscope_analysis.target import Target, study_target
from batchscope_analysis.textfmt import fmt, pct, points


@dataclass(frozen=True)
class Answer:
    topic: str
    text: str


@dataclass(frozen=True)
class Findings:
    runs: int
    studies: list[str]
    target: Optional[Target]
    target_note: str
    equal: EqualEpochs
    noise_per_batch: pd.DataFrame
    noise_overall: float
    steps_table: pd.DataFrame
    steps_best: pd.DataFrame
    fit: StepsFit
    gap: GapTrend
    answers: list[Answer]


def compute_findings(runs: Iterable[Run], target: Optional[Target] = None) -> Findings:
    """All headline numbers of a study; `target` overrides the runs' stored one."""
    runs = list(runs)
    resolved, note = study_target(runs, target)
    equal = equal_epochs(runs)
    noise_per_batch, noise_overall = b_simple_summary(runs)
    steps_table, steps_best, fit = fit_study(runs, resolved)
    gap = gap_trend(equal.by_batch)
    answers = [
        Answer("Best batch at equal epochs", _best_batch_text(equal)),
        Answer("Gradient noise scale", _noise_text(noise_per_batch, noise_overall)),
        Answer("Critical batch size", _b_crit_text(fit, steps_best, resolved, note, noise_overall)),
        Answer("Generalization gap", _gap_text(gap, equal)),
    ]
    studies = sorted({str(r.attrs.get("study", "")) for r in runs} - {""})
    return Findings(
        runs=len(runs), studies=studies, target=resolved, target_note=note, equal=equal,
        noise_per_batch=noise_per_batch, noise_overall=noise_overall, steps_table=steps_table,
        steps_best=steps_best, fit=fit, gap=gap, answers=answers,
    )


def _excluded_text(equal: EqualEpochs) -> str:
    text = f" Note: {equal.note}." if equal.note else ""
    if not equal.excluded:
        return text
    parts = ", ".join(f"{count} {reason}" for reason, count in sorted(equal.excluded.items()))
    total = sum(equal.excluded.values())
    return f"{text} ({total} run{'s' if total != 1 else ''} left out: {parts}.)"


def _best_batch_text(equal: EqualEpochs) -> str:
    table = equal.by_batch
    if table.empty:
        return "No completed run to compare." + _excluded_text(equal)
    epochs = f"{equal.epoch:.3g} epoch{'s' if equal.epoch != 1 else ''}"
    best = table.loc[table["val_acc_mean"].astype(float).idxmax()]
    largest = table.loc[table["global_batch"].idxmax()]

    def detail(row: pd.Series) -> str:
        seeds = int(row["seeds"])
        spread = (f"; seeds {pct(row['val_acc_min'])} to {pct(row['val_acc_max'])}" if seeds > 1 else "")
        return f"mean of {seeds} seed{'s' if seeds != 1 else ''} at base lr {row['base_lr']:g}{spread}"

    if len(table) == 1:
        return (
            f"Only one global batch, B={int(best['global_batch'])}, has completed runs: "
            f"{pct(best['val_acc_mean'])} validation accuracy after {epochs} ({detail(best)}); "
            "nothing to compare it with." + _excluded_text(equal)
        )
    if int(best["global_batch"]) == int(largest["global_batch"]):
        rest = table[table["global_batch"] != best["global_batch"]]
        runner = rest.loc[rest["val_acc_mean"].astype(float).idxmax()]
        return (
            f"The largest batch, B={int(best['global_batch'])}, reached the best validation accuracy at equal epochs "
            f"({epochs}): {pct(best['val_acc_mean'])} ({detail(best)}), "
            f"{points(best['val_acc_mean'] - runner['val_acc_mean'])} above the next best, "
            f"B={int(runner['global_batch'])} ({pct(runner['val_acc_mean'])})." + _excluded_text(equal)
        )
    return (
        f"B={int(best['global_batch'])} reached the best validation accuracy at equal epochs ({epochs}): "
        f"{pct(best['val_acc_mean'])} ({detail(best)}), {points(best['val_acc_mean'] - largest['val_acc_mean'])} "
        f"above the largest batch, B={int(largest['global_batch'])} ({pct(largest['val_acc_mean'])})."
        + _excluded_text(equal)
    )


def _noise_text(per_batch: pd.DataFrame, overall: float) -> str:
    if per_batch.empty:
        return (
            "Not measured: no run has more than one small batch (one rank and gns.microbatches = 1), so the "
            "noise cannot be separated from the gradient. Set gns.microbatches >= 2 or use several ranks."
        )
    listed = ", ".join(f"B={int(r.global_batch)}: {fmt(r.b_simple_median)}" for r in per_batch.itertuples())
    return (
        f"The measured gradient noise scale B_simple is {fmt(overall)} samples overall "
        f"(median over runs of each run's median over the second half of training); per global batch: {listed}. "
        "Batches well below B_simple use samples efficiently; far above it, extra samples per step buy little."
    )


def _b_crit_text(fit: StepsFit, best: pd.DataFrame, target: Optional[Target], note: str, b_simple: float) -> str:
    if target is None:
        return f"Not estimated: {note}."
    if not fit.ok:
        return f"Not estimated for target {target.describe()}: {fit.reason}."
    largest = int(best["global_batch"].max())
    examples_factor = 1.0 + largest / fit.b_crit  # E(B)/E_min = (S_min B + E_min)/E_min
    steps_factor = 1.0 + fit.b_crit / largest  # S(B)/S_min
    text = (
        f"Critical batch size B_crit ≈ {fmt(fit.b_crit)} samples, from the fit S(B) = S_min + E_min/B of the "
        f"fewest steps to {target.describe()} at {fit.n_points} batch sizes: S_min = {fmt(fit.s_min)} steps, "
        f"E_min = {fmt(fit.e_min)} samples (relative RMS misfit {100 * fit.rel_rms:.1f} %). "
        f"At the largest batch, B={largest}, reaching the target takes {examples_factor:.2g}× the minimum number "
        f"of samples and {steps_factor:.2g}× the minimum number of steps."
    )
    if math.isfinite(b_simple) and b_simple > 0:
        ratio = b_simple / fit.b_crit
        text += f" The measured B_simple ({fmt(b_simple)}) is {ratio:.2g}× B_crit"
        text += " (McCandlish et al. find the two agree within about an order of magnitude)."
    return text


def _gap_text(trend: GapTrend, equal: EqualEpochs) -> str:
    if len(trend.batches) < 2:
        return "Not enough completed batch sizes to see a trend in the generalization gap."
    first, last = trend.gaps[0], trend.gaps[-1]
    lo_b, hi_b = trend.batches[0], trend.batches[-1]
    what = f"The generalization gap (train minus validation accuracy after {equal.epoch:.3g} epochs)"
    ends = f"{points(first)} at B={lo_b}, {points(last)} at B={hi_b}"
    if trend.direction == "flat":
        return f"{what} stays about flat across batch sizes: {ends}."
    sign = "+" if trend.per_doubling > 0 else "-"
    return (
        f"{what} {trend.direction} with batch size: {ends} ({sign}{100 * abs(trend.per_doubling):.2g} "
        f"percentage points per doubling of B, least squares over {len(trend.batches)} batch sizes)."
    )
