"""The answers a batch-size study is run for, as numbers and plain sentences.

Which batch generalizes best at equal epochs, the measured gradient noise
scale, the critical batch size from steps-to-target, how the generalization
gap moves with batch size, and whether larger batches ended sharper
(docs/DESIGN "Who uses it"). The report renders these; they are computed
here so they can be tested and reused without HTML. A study of mse runs (no accuracy) is judged by
validation loss instead (score.LOSS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional

import pandas as pd

from batchscope_analysis.generalization import EqualEpochs, GapTrend, equal_epochs
from batchscope_analysis.intervals import Interval, round_to_interval
from batchscope_analysis.load import Run
from batchscope_analysis.noise import NoiseSummary, b_simple_summary, headline_interval, noise_summary
from batchscope_analysis.scaling import ScalingStudy, StepsFit, fit_study, scaling_study, scaling_text
from batchscope_analysis.score import Score
from batchscope_analysis.sharpness import SharpnessStudy, sharpness_study, sharpness_text
from batchscope_analysis.target import Target, study_target
from batchscope_analysis.textfmt import fmt
from batchscope_analysis.tuning import ROBUST_LOSS_SHARE, ROBUST_STEPS_SHARE, STEPS_METRIC, Tuning, tuning_study


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
    # Intervals on the fit, time to target per batch and their caveats (scaling.scaling_study).
    scaling: Optional[ScalingStudy] = None
    # Each batch at its best lr, with intervals and warnings (tuning.py).
    tuning: Optional[Tuning] = None
    # Final sharpness per batch, its trend and its correlation with the gap (sharpness.py).
    sharpness: Optional[SharpnessStudy] = None


def compute_findings(runs: Iterable[Run], target: Optional[Target] = None) -> Findings:
    """All headline numbers of a study; `target` overrides the runs' stored one."""
    runs = list(runs)
    resolved, note = study_target(runs, target)
    equal = equal_epochs(runs)
    noise = noise_summary(runs)
    noise_per_batch, noise_overall = b_simple_summary(runs)
    steps_table, steps_best, fit = fit_study(runs, resolved)
    scaling = scaling_study(runs, resolved) if resolved is not None else None
    tuning = tuning_study(runs, equal.score, equal)
    gap = tuning.gap
    sharpness = sharpness_study(runs, tuning)
    answers = [
        Answer("Best batch at equal epochs", _best_batch_text(equal, tuning)),
        Answer("Gradient noise scale", _noise_text(noise_per_batch, noise_overall, noise) + _buffers_text(runs)),
        Answer("Critical batch size", _b_crit_text(fit, steps_best, resolved, note, noise_overall, scaling)),
        Answer("Generalization gap", _gap_text(gap, equal)),
        Answer("Sharpness", sharpness_text(sharpness, gap.direction if len(gap.batches) >= 2 else "")),
    ]
    studies = sorted({str(r.attrs.get("study", "")) for r in runs} - {""})
    return Findings(
        runs=len(runs), studies=studies, target=resolved, target_note=note, equal=equal,
        noise_per_batch=noise_per_batch, noise_overall=noise_overall, steps_table=steps_table,
        steps_best=steps_best, fit=fit, gap=gap, answers=answers, scaling=scaling,
        tuning=tuning, sharpness=sharpness,
    )


def _excluded_text(equal: EqualEpochs) -> str:
    text = f" Note: {equal.note}." if equal.note else ""
    if not equal.excluded:
        return text
    parts = ", ".join(f"{count} {reason}" for reason, count in sorted(equal.excluded.items()))
    total = sum(equal.excluded.values())
    return f"{text} ({total} run{'s' if total != 1 else ''} left out: {parts}.)"


def _best_batch_text(equal: EqualEpochs, tuning: Optional[Tuning] = None) -> str:
    """The best batch at equal epochs, each batch at its own best lr; with `tuning`, the interval of
    its lead, the lrs within reach of each batch's best and every tuning warning."""
    return _best_batch_core(equal) + (_tuning_text(tuning) if tuning is not None else "")


def _best_batch_core(equal: EqualEpochs) -> str:
    table, score = equal.by_batch, equal.score
    col = f"{score.column}_mean"
    if table.empty:
        if equal.use_steps_to_target:
            return "No equal-epoch comparison." + _excluded_text(equal)
        return "No completed run to compare." + _excluded_text(equal)
    epochs = f"{equal.epoch:.3g} epoch{'s' if equal.epoch != 1 else ''}"
    values = table[col].astype(float)
    best = table.loc[values.idxmax() if score.higher_is_better else values.idxmin()]
    largest = table.loc[table["global_batch"].idxmax()]

    def detail(row: pd.Series) -> str:
        seeds = int(row["seeds"])
        low, high = score.value(row[f"{score.column}_min"]), score.value(row[f"{score.column}_max"])
        spread = f"; seeds {low} to {high}" if seeds > 1 else ""
        return f"mean of {seeds} seed{'s' if seeds != 1 else ''} at base lr {row['base_lr']:g}{spread}"

    def ahead(row: pd.Series, other: pd.Series) -> str:
        """How far `row` is ahead of `other`, as a positive difference."""
        diff = float(row[col]) - float(other[col])
        return score.difference(diff if score.higher_is_better else -diff)

    if len(table) == 1:
        return (
            f"Only one global batch, B={int(best['global_batch'])}, has completed runs: "
            f"{score.value(best[col])} {score.noun} after {epochs} ({detail(best)}); "
            "nothing to compare it with." + _excluded_text(equal)
        )
    if int(best["global_batch"]) == int(largest["global_batch"]):
        rest = table[table["global_batch"] != best["global_batch"]]
        rest_values = rest[col].astype(float)
        runner = rest.loc[rest_values.idxmax() if score.higher_is_better else rest_values.idxmin()]
        return (
            f"The largest batch, B={int(best['global_batch'])}, reached {score.best_word} at equal epochs "
            f"({epochs}): {score.value(best[col])} ({detail(best)}), "
            f"{ahead(best, runner)} {score.better_word} the next best, "
            f"B={int(runner['global_batch'])} ({score.value(runner[col])})." + _excluded_text(equal)
        )
    return (
        f"B={int(best['global_batch'])} reached {score.best_word} at equal epochs ({epochs}): "
        f"{score.value(best[col])} ({detail(best)}), {ahead(best, largest)} "
        f"{score.better_word} the largest batch, B={int(largest['global_batch'])} ({score.value(largest[col])})."
        + _excluded_text(equal)
    )


def _tuning_text(tuning: Tuning) -> str:
    """The margin's interval, each batch's best lr and robust range, and the warnings (but the
    equal-epoch note, which _excluded_text already gives)."""
    score = tuning.score
    parts: list[str] = []
    if tuning.best_batch is not None and tuning.runner_up is not None:
        lead = _with_interval(tuning.margin, score, tuning.interval_from)
        parts.append(f"Its lead over the next best batch, B={tuning.runner_up}: {lead}.")
    rows = [r for _, r in sorted(tuning.per_batch.items()) if r.lrs_within]
    if rows and any(len(r.lrs_tried) > 1 for r in rows):
        if tuning.metric == STEPS_METRIC:
            rule = (f"reaching the target on every seed in at most {100 * ROBUST_STEPS_SHARE:g} % more steps "
                    "than the batch's best lr")
        elif score.higher_is_better:
            rule = "within 1 point of the batch's best"
        else:
            rule = f"within {100 * ROBUST_LOSS_SHARE:g} % of the batch's lowest loss"
        listed = "; ".join(
            f"B={r.batch}: best {r.lr:g}, "
            + (f"{min(r.lrs_within):g} to {max(r.lrs_within):g}" if len(r.lrs_within) > 1 else "only it")
            + f" ({len(r.lrs_within)} of {len(r.lrs_tried)} tried)"
            for r in rows
        )
        parts.append(f"Base learning rates {rule}: {listed}.")
    parts += [w for w in tuning.warnings if w != tuning.note]
    return "".join(f" {p}" for p in parts)


def _with_interval(iv: Interval, score: Score, source: str) -> str:
    """`value (90 % interval low to high, what was resampled)`, rounded to what the interval supports."""
    if not iv.has_interval:
        return f"{score.difference(iv.value)} (no interval: {iv.reason})"
    what = "seeds resampled" if source == "seeds" else "evaluations resampled (one seed)"
    scale = 100.0 if score.higher_is_better else 1.0  # accuracy in percentage points
    value, low, high = (round_to_interval(scale * x, scale * (iv.high - iv.low)) for x in (iv.value, iv.low, iv.high))
    unit = f" percentage point{'' if value == 1 else 's'}" if score.higher_is_better else ""
    return f"{value:.4g}{unit} (90 % interval {low:.4g} to {high:.4g}, {what})"


def _noise_text(per_batch: pd.DataFrame, overall: float, noise: NoiseSummary) -> str:
    if per_batch.empty:
        return (
            "Not measured: no run has more than one small batch (one rank and gns.microbatches = 1), so the "
            "noise cannot be separated from the gradient. Set gns.microbatches >= 2 or use several ranks."
        )
    listed = ", ".join(f"B={int(r.global_batch)}: {fmt(r.b_simple_median)}" for r in per_batch.itertuples())
    short = noise.short_runs
    caveat = (
        f" Caveat: {len(short)} run{'s' if len(short) != 1 else ''} ({', '.join(short[:3])}"
        f"{', ...' if len(short) > 3 else ''}) saw fewer than twice the window's samples, so their B_simple "
        "still averages early training; set a smaller gns.ema_samples or train longer."
        if short
        else ""
    )
    iv = headline_interval(noise)
    spread = (f", 90 % interval {fmt(iv.low)} to {fmt(iv.high)} with each batch's runs resampled," if iv.has_interval
              else f" (no interval: {iv.reason})")
    return (
        f"The measured gradient noise scale B_simple is {fmt(overall)} samples overall{spread} (every run re-smoothed "
        f"from its raw norms over a window of {noise.window:g} samples, the same at every batch size; each "
        "run's median over the second half of its samples, then the median over its batch's runs, then over "
        f"batches); per global batch: {listed}. "
        "Batches well below B_simple use samples efficiently; far above it, extra samples per step buy little."
        + caveat
    )


def _b_crit_text(fit: StepsFit, best: pd.DataFrame, target: Optional[Target], note: str, b_simple: float,
                 scaling: Optional[ScalingStudy] = None) -> str:
    if target is None:
        return f"Not estimated: {note}."
    more = f" {scaling_text(scaling)}" if scaling is not None else ""
    if not fit.ok:
        return f"Not estimated for target {target.describe()}: {fit.reason}.{more}"
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
    return text + more


def _gap_text(trend: GapTrend, equal: EqualEpochs) -> str:
    if len(trend.batches) < 2:
        if equal.use_steps_to_target:
            return "Not measured: there is no fair equal-epoch comparison (see the best batch)."
        return "Not enough completed batch sizes to see a trend in the generalization gap."
    score: Score = equal.score
    first, last = trend.gaps[0], trend.gaps[-1]
    lo_b, hi_b = trend.batches[0], trend.batches[-1]
    what = f"The generalization gap ({score.gap_words} after {equal.epoch:.3g} epochs, each batch at its best lr)"
    ends = f"{score.difference(first)} at B={lo_b}, {score.difference(last)} at B={hi_b}"
    interval = _gap_interval_text(trend, score)
    if trend.direction == "flat":
        return f"{what} stays about flat across batch sizes: {ends}{interval}."
    sign = "+" if trend.per_doubling > 0 else "-"
    scale = 100.0 if score.higher_is_better else 1.0
    width = scale * (trend.high - trend.low) if math.isfinite(trend.high - trend.low) else math.nan
    shown = round_to_interval(scale * abs(trend.per_doubling), width)
    number = f"{shown:.4g}" if math.isfinite(width) and width > 0 else f"{shown:.2g}"
    rate = f"{number} percentage point{'' if shown == 1 else 's'}" if score.higher_is_better else number
    return (
        f"{what} {trend.direction} with batch size: {ends} ({sign}{rate} "
        f"per doubling of B, least squares over {len(trend.batches)} batch sizes{interval})."
    )


def _gap_interval_text(trend: GapTrend, score: Score) -> str:
    """`; 90 % interval a to b per doubling`, and whether it excludes no change; "" without one."""
    if not (math.isfinite(trend.low) and math.isfinite(trend.high)):
        return ""
    width = trend.high - trend.low
    scale = 100.0 if score.higher_is_better else 1.0
    unit = " points" if score.higher_is_better else ""
    low, high = (round_to_interval(scale * x, scale * width) for x in (trend.low, trend.high))
    what = "seeds" if trend.interval_from == "seeds" else "evaluations (one seed)"
    verdict = "" if trend.low > 0 or trend.high < 0 else ", which includes no change"
    return f"; 90 % interval {low:+.4g} to {high:+.4g}{unit} per doubling, {what} resampled{verdict}"


def _buffers_text(runs: list[Run]) -> str:
    """A caveat for models with buffers (BatchNorm running statistics), empty when none has any."""
    with_buffers = [run for run in runs if run.buffers]
    if not with_buffers:
        return ""
    return (
        f" Caveat: {len(with_buffers)} of {len(runs)} runs train a model with buffers (BatchNorm): each "
        "batch's gradient depends on its own batch statistics, so the estimator's premise (a batch gradient "
        "is the mean of per-sample gradients) holds only approximately, and the noise scale is approximate."
    )
