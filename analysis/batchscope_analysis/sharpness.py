"""Did larger batches end sharper, and does it line up with the generalization gap?

Sharpness is λ_max of the training loss's Hessian at an evaluation
(/eval/sharpness, docs/metrics.md "Sharpness"; NaN where it was not measured).
A run's **final sharpness** is its last finite value, and its gap is the
generalization gap at that same evaluation (score.Score.gap_of), so the two
describe the same parameters even when sharpness is measured only every k-th
evaluation.

Which runs count: completed runs at each batch's best learning rate, chosen
by the package's fair-tuning rule (tuning.tuning_study; every run where a
batch tried one lr), whose final sharpness is finite and positive (the trend
is on a log scale). Runs left out (diverged, other statuses, no finite or no
positive final sharpness) are counted and named in a caveat.

The trend: the least-squares slope of the per-batch mean of log2(final
sharpness) against log2(global batch), i.e. the exponent α of
sharpness ∝ B^α (2^α is the factor per doubling of the batch). Its 90 %
interval resamples seeds within each batch (intervals.py, seeded, widened
by the Student-t factor for few seeds); with one seed everywhere it is the
t interval of the least-squares slope across batches instead. Below
MIN_BATCHES batches there is no slope, only the per-batch medians: two
points always make a line. The verdict is "sharper" when the interval lies
above 0, "flatter" below, "no_clear_trend" otherwise.

The gap: Spearman's ρ between final sharpness and gap over the same runs,
with a Fisher-z interval (variance 1.06 / (n - 3), Fieller et al. 1957;
no resampling, so it needs no seed), from MIN_CORRELATION_RUNS runs up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
from scipy import stats

from batchscope_analysis.generalization import slope_per_doubling
from batchscope_analysis.intervals import (
    DRAWS, LEVEL, SEED, Interval, no_interval, percentile_interval, resample_groups, small_sample_factor,
    smallest_group,
)
from batchscope_analysis.load import Run
from batchscope_analysis.score import Score, study_score
from batchscope_analysis.textfmt import fmt
from batchscope_analysis.tuning import Tuning, tuning_study

# Fewer batches than this: no slope (a line through two points says nothing of its own uncertainty).
MIN_BATCHES: int = 3
# Fewer runs than this: no correlation (the Fisher-z interval needs n > 3, and is wild just above).
MIN_CORRELATION_RUNS: int = 5
# A final measurement whose residual |Hv - λv| / |λ| exceeds this had not converged (a caveat).
UNCONVERGED_RESIDUAL: float = 0.1
# Fieller, Hartley & Pearson (1957): the variance of atanh(Spearman's ρ) is about 1.06 / (n - 3).
SPEARMAN_Z_VARIANCE: float = 1.06

SHARPER: str = "sharper"
FLATTER: str = "flatter"
NO_CLEAR_TREND: str = "no_clear_trend"
TOO_FEW_BATCHES: str = "too_few_batches"
POSITIVE: str = "positive"
NEGATIVE: str = "negative"
NO_CLEAR_RELATION: str = "no_clear_relation"
TOO_FEW_RUNS: str = "too_few_runs"

NOT_MEASURED: str = (
    "no run measured sharpness (eval.sharpness is off, or the run files are schema version 2, before it)"
)


@dataclass(frozen=True)
class RunSharpness:
    """One run's last measured sharpness and the generalization gap at that evaluation."""

    run: str
    global_batch: int
    base_lr: float
    seed: int
    sharpness: float
    samples: float
    gap: float
    residual: float


@dataclass(frozen=True)
class SharpnessStudy:
    """The sharpness answers of a study (sharpness_study).

    per_run: the runs the trend is fitted on (each batch at its best lr).
    slope: exponent α of final sharpness ∝ B^α with its interval; NaN below
    MIN_BATCHES batches. correlation: Spearman's ρ of final sharpness and gap
    over per_run. left_out: reason -> runs (diverged, status ..., no finite
    final sharpness, final sharpness not positive).
    """

    measured: bool
    reason: str  # why there is no trend at all ("" when measured)
    score: Score
    per_run: tuple[RunSharpness, ...]
    median_per_batch: dict[int, float]
    slope: Interval
    interval_from: str  # "seeds", "batches" (t interval, one seed), or "" when none
    verdict: str
    correlation: Interval
    correlation_verdict: str
    left_out: dict[str, int]
    unconverged: tuple[str, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def batches(self) -> list[int]:
        return sorted(self.median_per_batch)

    @property
    def factor_per_doubling(self) -> Interval:
        """2^slope: how many times sharper per doubling of the batch."""
        s = self.slope
        return Interval(2.0 ** s.value, 2.0 ** s.low, 2.0 ** s.high, s.level, s.reason)


def has_sharpness(run: Run) -> bool:
    """Whether the run measured sharpness at least once (a finite /eval/sharpness)."""
    return "sharpness" in run.eval and bool(np.isfinite(run.eval["sharpness"].to_numpy(dtype=float)).any())


def final_sharpness(run: Run, score: Score) -> Optional[RunSharpness]:
    """The run's last finite sharpness, with the gap at that evaluation; None when it has none."""
    if "sharpness" not in run.eval:
        return None
    values = run.eval["sharpness"].to_numpy(dtype=float)
    where = np.flatnonzero(np.isfinite(values))
    if not len(where):
        return None
    row = run.eval.iloc[int(where[-1])]
    gap = score.gap_of(float(row[score.column]), float(row[score.train_column]))
    return RunSharpness(run.name, run.global_batch, float(run.attrs["base_lr"]), int(run.attrs["seed"]),
                        float(values[where[-1]]), float(row["samples"]), gap,
                        float(row.get("sharpness_residual", math.nan)))


def sharpness_study(runs: Iterable[Run], tuning: Optional[Tuning] = None, *,
                    best_lr: Optional[Mapping[int, float]] = None, draws: int = DRAWS,
                    seed: int = SEED) -> SharpnessStudy:
    """Final sharpness per batch, its trend over batch size and its correlation with the gap.

    Each batch's best lr comes from `best_lr` (batch -> lr) or `tuning` when
    the caller has either (only tuning's choice of lr is used), else from
    tuning_study."""
    runs = list(runs)
    score = study_score(runs)
    if not any(has_sharpness(r) for r in runs):
        empty = no_interval(math.nan, NOT_MEASURED)
        return SharpnessStudy(False, NOT_MEASURED, score, (), {}, empty, "", TOO_FEW_BATCHES, empty,
                              TOO_FEW_RUNS, {}, ())
    if best_lr is None:
        tuning = tuning if tuning is not None else tuning_study(runs, score, draws=1)
        best_lr = {b: t.lr for b, t in tuning.per_batch.items() if math.isfinite(t.lr)}
    chosen, left_out = _select(runs, best_lr, score)
    groups: dict[int, list[float]] = {}
    for r in chosen:
        groups.setdefault(r.global_batch, []).append(math.log2(r.sharpness))
    medians = {b: float(np.median([r.sharpness for r in chosen if r.global_batch == b])) for b in sorted(groups)}
    slope, source = _slope_interval(groups, draws, seed)
    verdict = _verdict(slope) if len(groups) >= MIN_BATCHES else TOO_FEW_BATCHES
    corr = spearman_interval([r.sharpness for r in chosen], [r.gap for r in chosen])
    unconverged = tuple(r.run for r in chosen if math.isfinite(r.residual) and r.residual > UNCONVERGED_RESIDUAL)
    corr_verdict = _verdict(corr, (POSITIVE, NEGATIVE, NO_CLEAR_RELATION)) if corr.has_interval else TOO_FEW_RUNS
    study = SharpnessStudy(True, "", score, tuple(chosen), medians, slope, source, verdict, corr, corr_verdict,
                           left_out, unconverged)
    return replace(study, warnings=tuple(_warnings(study)))


def _select(runs: list[Run], best: Mapping[int, float], score: Score) -> tuple[list[RunSharpness], dict[str, int]]:
    """The completed runs at each batch's best lr with a finite positive final sharpness; reason -> runs
    left out."""
    lrs: dict[int, set[float]] = {}
    for run in runs:
        lrs.setdefault(run.global_batch, set()).add(float(run.attrs["base_lr"]))
    left_out: dict[str, int] = {}

    def leave(reason: str) -> None:
        left_out[reason] = left_out.get(reason, 0) + 1

    chosen: list[RunSharpness] = []
    for run in sorted(runs, key=lambda r: (r.global_batch, float(r.attrs["base_lr"]), int(r.attrs["seed"]))):
        if run.status.name != "completed":
            leave("diverged" if run.status.name == "diverged" else f"status {run.status.name}")
            continue
        one_lr = len(lrs[run.global_batch]) <= 1
        if not one_lr and best.get(run.global_batch) != float(run.attrs["base_lr"]):
            continue  # another lr of its batch: not a setting the comparison is about, not a caveat
        final = final_sharpness(run, score)
        if final is None:
            leave("no finite final sharpness")
        elif not final.sharpness > 0:
            leave("final sharpness not positive")
        else:
            chosen.append(final)
    return chosen, left_out


def _slope_interval(groups: Mapping[int, Sequence[float]], draws: int, seed: int) -> tuple[Interval, str]:
    """Slope of the batch means of log2(sharpness) on log2(B), and its interval (see the module docstring)."""

    def slope(g: Mapping[int, Sequence[float]]) -> float:
        batches = sorted(b for b in g if len(g[b]))
        return slope_per_doubling(batches, [sum(g[b]) / len(g[b]) for b in batches])

    if len(groups) < MIN_BATCHES:
        return no_interval(math.nan, f"{len(groups)} batch size{'s' if len(groups) != 1 else ''} with a final "
                           f"sharpness; a trend needs {MIN_BATCHES}"), ""
    value = slope(groups)
    if any(len(g) >= 2 for g in groups.values()):
        rng = np.random.default_rng(seed)
        draws_ = [slope(resample_groups(groups, rng)) for _ in range(draws)]
        iv = percentile_interval(draws_, value, LEVEL)
        # Widened about the estimate on a linear scale: a slope may take either sign, so
        # percentile_interval's log-scale widening for positive quantities does not apply.
        c = small_sample_factor(smallest_group(groups), LEVEL)
        if not iv.has_interval:
            return iv, ""
        low, high = value - c * max(value - iv.low, 0.0), value + c * max(iv.high - value, 0.0)
        return Interval(value, low, high, LEVEL), "seeds"
    # One seed per batch: nothing to resample within a batch; the scatter of the batches about
    # the line is the evidence left (t interval of a least-squares slope, n - 2 degrees of freedom).
    xs = [math.log2(b) for b in sorted(groups)]
    ys = [groups[b][0] for b in sorted(groups)]
    fit = stats.linregress(xs, ys)
    t = float(stats.t.ppf(0.5 + LEVEL / 2.0, len(xs) - 2))
    se = float(fit.stderr)
    return Interval(value, value - t * se, value + t * se, LEVEL), "batches"


def _verdict(iv: Interval, words: tuple[str, str, str] = (SHARPER, FLATTER, NO_CLEAR_TREND)) -> str:
    """words[0] when the interval lies above 0, words[1] below, words[2] otherwise (or without one)."""
    if iv.has_interval and iv.low > 0:
        return words[0]
    if iv.has_interval and iv.high < 0:
        return words[1]
    return words[2]


def spearman_interval(x: Sequence[float], y: Sequence[float], level: float = LEVEL) -> Interval:
    """Spearman's ρ of x and y with its Fisher-z interval; no interval below MIN_CORRELATION_RUNS pairs."""
    pairs = [(a, b) for a, b in zip(x, y) if math.isfinite(a) and math.isfinite(b)]
    n = len(pairs)
    if n < MIN_CORRELATION_RUNS:
        return no_interval(math.nan, f"{n} run{'s' if n != 1 else ''} with a final sharpness and a gap; a "
                           f"correlation needs {MIN_CORRELATION_RUNS}")
    a, b = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return no_interval(math.nan, "the final sharpness or the gap is the same in every run")
    rho = float(stats.spearmanr(a, b).statistic)
    if abs(rho) >= 1.0:
        return Interval(rho, rho, rho, level)
    half = float(stats.norm.ppf(0.5 + level / 2.0)) * math.sqrt(SPEARMAN_Z_VARIANCE / (n - 3))
    z = math.atanh(rho)
    return Interval(rho, math.tanh(z - half), math.tanh(z + half), level)


# --- words ----------------------------------------------------------------------------------------


def _warnings(s: SharpnessStudy) -> list[str]:
    out: list[str] = []
    if s.left_out:
        total = sum(s.left_out.values())
        parts = ", ".join(f"{n} {why}" for why, n in sorted(s.left_out.items()))
        out.append(f"Sharpness trend: {total} run{'s' if total != 1 else ''} left out ({parts}).")
    if s.verdict == TOO_FEW_BATCHES:
        out.append(f"Sharpness trend: {s.slope.reason}, so whether larger batches end sharper is not told.")
    if s.interval_from == "batches":
        out.append("Sharpness trend: one seed per batch, so its interval is the least-squares t interval across "
                   "batches (the batches' scatter about the line), not seed-to-seed variation; run 2 or more "
                   "seeds.")
    if s.unconverged:
        n = len(s.unconverged)
        listed = ", ".join(s.unconverged[:3]) + (", ..." if n > 3 else "")
        out.append(
            f"Sharpness: the final power iteration of {n} run{'s' if n != 1 else ''} ({listed}) had not converged "
            f"(residual |Hv - λv| / |λ| above {UNCONVERGED_RESIDUAL:g}); raise eval.sharpness.iterations."
        )
    return out


def factor_texts(iv: Interval) -> tuple[str, str, str]:
    """The factor per doubling and its interval ends as "×1.41", with as few figures (2 to 4) as keep
    the three apart: a narrow interval would read "×1.3 to ×1.3" at two."""
    for digits in (2, 3, 4):
        texts = tuple(f"×{x:.{digits}g}" for x in (iv.value, iv.low, iv.high))
        if not iv.has_interval or len(set(texts)) == 3:
            break
    return texts[0], texts[1], texts[2]


def sharpness_text(s: SharpnessStudy, gap_direction: str = "") -> str:
    """The report's answer: whether larger batches ended sharper, with the interval, and the gap.

    `gap_direction` is the generalization gap's trend (GapTrend.direction) when known."""
    if not s.measured:
        return f"Not measured: {s.reason}."
    if not s.per_run:
        return "No completed run at a batch's best learning rate has a final sharpness." + _left_out_text(s)
    medians = ", ".join(f"B={b}: {fmt(v)}" for b, v in s.median_per_batch.items())
    n_runs, n_batches = len(s.per_run), len(s.median_per_batch)
    which = f"{n_runs} run{'s' if n_runs != 1 else ''} at {n_batches} batch size{'s' if n_batches != 1 else ''}"
    what = (f"Final sharpness (λ_max of the training-loss Hessian at the last measurement; median per batch, "
            f"each batch at its best lr, {which}): {medians}.")
    if s.verdict == TOO_FEW_BATCHES:
        return f"{what} Too few batch sizes to tell whether larger batches end sharper: {s.slope.reason}." \
               + _left_out_text(s)
    f = s.factor_per_doubling
    how = "seeds resampled within each batch" if s.interval_from == "seeds" else (
        "t interval across batches, one seed" if s.interval_from == "batches" else "no interval")
    if s.slope.has_interval:
        interval = (f"slope of log2 sharpness on log2 B {s.slope.value:+.2f}, 90 % interval {s.slope.low:+.2f} to "
                    f"{s.slope.high:+.2f}, {how}")
    else:
        interval = f"slope {s.slope.value:+.2f}, no interval: {s.slope.reason}"
    factor = f"{factor_texts(f)[0]} per doubling of the batch ({interval})"
    lead = {
        SHARPER: "Larger batches ended sharper on this problem",
        FLATTER: "Larger batches ended flatter on this problem",
        NO_CLEAR_TREND: "No clear trend of final sharpness with batch size",
    }[s.verdict]
    return f"{lead}: {factor}. {what}{_gap_text(s, gap_direction)}{_left_out_text(s)}"


def _gap_text(s: SharpnessStudy, gap_direction: str) -> str:
    c = s.correlation
    if not c.has_interval:
        return f" Final sharpness against the gap: no correlation ({c.reason})."
    meaning = {
        POSITIVE: "runs that ended sharper had larger gaps",
        NEGATIVE: "runs that ended sharper had smaller gaps",
        NO_CLEAR_RELATION: "no clear relation",
    }[s.correlation_verdict]
    text = (f" Final sharpness against the generalization gap ({s.score.gap_words}) at the same evaluation, over "
            f"these runs: Spearman ρ = {c.value:+.2f} (90 % interval {c.low:+.2f} to {c.high:+.2f}): {meaning}")
    if gap_direction in ("grows", "shrinks", "flat") and s.verdict != NO_CLEAR_TREND:
        gap = "stays about flat" if gap_direction == "flat" else gap_direction
        agree = (s.verdict == SHARPER and gap_direction == "grows") or (s.verdict == FLATTER and gap_direction == "shrinks")
        text += (f"; the gap {gap} with batch size (Generalization gap), "
                 + ("in line with the sharpness trend" if agree else "not in step with the sharpness trend"))
    return text + "."


def _left_out_text(s: SharpnessStudy) -> str:
    if not s.left_out:
        return ""
    total = sum(s.left_out.values())
    parts = ", ".join(f"{n} {why}" for why, n in sorted(s.left_out.items()))
    return f" ({total} run{'s' if total != 1 else ''} left out: {parts}.)"


def sharpness_answers(runs: Iterable[Run], tuning: Optional[Tuning] = None) -> dict[str, Any]:
    """answers.json's sharpness_trend (None when no run measured sharpness), sharpness_trend_reason and
    warnings (plain values; NaN is turned into null by answers.py)."""
    return answers_of(sharpness_study(runs, tuning))


def answers_of(s: SharpnessStudy) -> dict[str, Any]:
    if not s.measured:
        return {"sharpness_trend": None, "sharpness_trend_reason": s.reason, "warnings": []}
    f, c = s.factor_per_doubling, s.correlation
    runs_per_batch: dict[int, int] = {}
    for r in s.per_run:
        runs_per_batch[r.global_batch] = runs_per_batch.get(r.global_batch, 0) + 1
    trend = {
        "slope": s.slope.value, "low": s.slope.low, "high": s.slope.high, "level": s.slope.level,
        "factor_per_doubling": f.value, "factor_low": f.low, "factor_high": f.high,
        "interval_from": s.interval_from or None, "verdict": s.verdict,
        "n_runs": len(s.per_run), "n_batches": len(s.median_per_batch),
        "median_per_batch": dict(s.median_per_batch), "runs_per_batch": runs_per_batch,
        "gap_correlation": {
            "method": "spearman", "rho": c.value, "low": c.low, "high": c.high, "level": c.level,
            "n_runs": len(s.per_run), "verdict": s.correlation_verdict, "reason": c.reason or None,
        },
        "left_out": dict(s.left_out),
        "reason": s.slope.reason or None,
    }
    return {"sharpness_trend": trend, "sharpness_trend_reason": "", "warnings": list(s.warnings)}
