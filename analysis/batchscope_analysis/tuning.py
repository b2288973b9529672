"""Tuning-aware batch comparisons: every batch at its own best learning rate, with intervals.

Batch-size conclusions flip when the learning rate is not tuned per batch
(Shallue et al. 2019), so the question "which batch is best?" is answered
with each global batch at the learning rate that served it best, and says
how far that can be trusted:

- The metric is the study's Score at equal epochs (generalization.equal_epochs):
  validation accuracy, or validation loss for a study of mse runs. Where
  targets make an equal-epoch comparison impossible (a target-stop study in
  which some runs stopped and others trained on), each batch's best lr is the
  one reaching the target in the fewest steps ("steps_to_target"), and the best
  batch is left to steps/samples to target (scaling.py).
- A learning rate that diverged on any seed never counts as a batch's best;
  a batch whose every lr diverged is reported as diverged, not as the worst.
- Grid edges: a batch's best lr is "low" / "high" when it is the smallest /
  largest base lr tried at that batch (diverged lrs count as tried: a best lr
  just below one that diverged is bracketed), "only" when one lr was tried,
  False otherwise. Each edge is a warning.
- Robustness: the lrs whose result is within ROBUST_ACCURACY (1 point) of the
  batch's best; for loss, within ROBUST_LOSS_SHARE (5 %) of the best loss
  (1 point of accuracy at 80-90 % is 5-10 % of the error, so 5 % of a loss is
  the same order and on the strict side); for steps to target, every seed
  reached the target in at most ROBUST_STEPS_SHARE (10 %) more steps.
- Intervals (90 %, intervals.py): seeds are resampled within each
  (batch, lr); every batch's best lr is re-chosen in every resample, so the
  intervals include the uncertainty of tuning. With one seed everywhere, a
  run's evaluations near the common epoch are resampled instead (the spread
  of one evaluation around a straight line through the last EVAL_WINDOW
  evaluations), which shows evaluation noise but not seed-to-seed variation:
  a warning says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

from batchscope_analysis.generalization import (
    FLAT_GAP_CHANGE, FLAT_LOSS_GAP_SHARE, EqualEpochs, GapTrend, equal_epochs, slope_per_doubling,
)
from batchscope_analysis.intervals import (
    DRAWS, LEVEL, SEED, Interval, no_interval, percentile_interval, resample_groups, smallest_group,
)
from batchscope_analysis.load import Run
from batchscope_analysis.score import LOSS, Score, study_score
from batchscope_analysis.target import steps_to_target, study_target

ROBUST_ACCURACY: float = 0.01
ROBUST_LOSS_SHARE: float = 0.05
ROBUST_STEPS_SHARE: float = 0.10
# One seed: the last this many evaluations up to the common epoch give the
# spread of one evaluation; below MIN_EVAL_WINDOW there is no interval.
EVAL_WINDOW: int = 8
MIN_EVAL_WINDOW: int = 4
STEPS_METRIC: str = "steps_to_target"
# Below this many seeds at the lrs compared, the plain percentile bootstrap
# over seeds runs narrow (on synthetic studies with 3 seeds its 90 % intervals
# covered the truth 64 % (a batch's value), 77 % (gap slope) and 84 % (margin)
# of the time). intervals.py widens them by the Student-t factor for the
# smallest group (over 100 such studies: 94 %, 95 %, 100 % with 3 seeds;
# 86 %, 89 %, 94 % with 8), which assumes a roughly normal spread of seeds;
# a warning says so.
FEW_SEEDS: int = 5

Key = tuple[int, float]  # (global batch, base lr)
Unit = tuple[float, float]  # (score value, gap) of one seed or one resampled evaluation
Units = Mapping[Key, Sequence[Unit]]
Edge = Union[bool, str]


@dataclass(frozen=True)
class BatchTuning:
    """One global batch at its best learning rate.

    lr is NaN when no lr has a result (every one diverged). at_grid_edge:
    False, "low", "high" or "only" (see the module docstring).
    """

    batch: int
    lr: float
    value: float
    seeds: int
    metric: str
    at_grid_edge: Edge
    lrs_tried: tuple[float, ...]
    lrs_within: tuple[float, ...]


@dataclass(frozen=True)
class Tuning:
    """The tuning-aware answers of a study (tuning_study)."""

    score: Score
    metric: str  # score.column, or STEPS_METRIC when targets made equal epochs impossible
    epoch: float
    per_batch: dict[int, BatchTuning]
    best_batch: Optional[int]
    runner_up: Optional[int]
    best_value: Interval
    margin: Interval  # best batch ahead of the best other batch (positive: ahead)
    gap: GapTrend
    interval_from: str  # "seeds", "evaluations", or "" when none
    diverged: tuple[str, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)
    # equal_epochs' note as a sentence (also the first warning), "" when none.
    note: str = ""


def tuning_answers(runs: Iterable[Run], score: Optional[Score] = None) -> dict[str, Any]:
    """The tuning-aware answers for answers.json (plain ints, floats, str, bool, None; int batch keys).

    {"best_batch": {batch, lr, metric, value, margin, low, high, runner_up,
    value_low, value_high, epoch, seeds, interval_from} or None,
    "best_lr_per_batch": {batch: {lr, at_grid_edge, metric, value, seeds}},
    "gap_trend": {per_doubling, low, high, interval_from},
    "lr_robustness_per_batch": {batch: {lr_low, lr_high, lrs_within, lrs_tried}},
    "diverged": [run names], "warnings": [sentences]}. low/high are the
    margin's 90 % interval; every missing number is None.
    """
    return answers_of(tuning_study(runs, score))


def answers_of(t: Tuning) -> dict[str, Any]:
    best: Optional[dict[str, Any]] = None
    if t.best_batch is not None:
        row = t.per_batch[t.best_batch]
        margin, value = t.margin.as_dict(), t.best_value.as_dict()
        best = {
            "batch": t.best_batch, "lr": _num(row.lr), "metric": t.metric, "value": value["value"],
            "margin": margin["value"], "low": margin["low"], "high": margin["high"], "runner_up": t.runner_up,
            "value_low": value["low"], "value_high": value["high"], "epoch": _num(t.epoch), "seeds": row.seeds,
            "interval_from": t.interval_from or None,
        }
    lrs = {
        b: {"lr": _num(r.lr), "at_grid_edge": r.at_grid_edge, "metric": r.metric, "value": _num(r.value),
            "seeds": r.seeds}
        for b, r in sorted(t.per_batch.items()) if math.isfinite(r.lr)
    }
    robust = {
        b: {"lr_low": min(r.lrs_within), "lr_high": max(r.lrs_within), "lrs_within": list(r.lrs_within),
            "lrs_tried": list(r.lrs_tried)}
        for b, r in sorted(t.per_batch.items()) if r.lrs_within
    }
    gap = {"per_doubling": _num(t.gap.per_doubling), "low": _num(t.gap.low), "high": _num(t.gap.high),
           "interval_from": t.gap.interval_from if math.isfinite(t.gap.low) else None}
    return {"best_batch": best, "best_lr_per_batch": lrs, "gap_trend": gap, "lr_robustness_per_batch": robust,
            "diverged": list(t.diverged), "warnings": list(t.warnings)}


def tuning_study(
    runs: Iterable[Run],
    score: Optional[Score] = None,
    equal: Optional[EqualEpochs] = None,
    *,
    draws: int = DRAWS,
    seed: int = SEED,
) -> Tuning:
    """Each batch at its best lr, the best batch with its margin, the gap trend, with intervals.

    `equal` is equal_epochs(runs, score) when the caller already has it.
    """
    runs = list(runs)
    score = score if score is not None else study_score(runs)
    equal = equal if equal is not None else equal_epochs(runs, score)
    note = _sentence(equal.note)
    warnings: list[str] = [note] if note else []
    if equal.use_steps_to_target:
        per_batch = _steps_per_batch(runs, equal.diverged_lrs, warnings)
        metric = STEPS_METRIC
        units: dict[Key, list[Unit]] = {}
        source = ""
    else:
        units, source = _units(runs, equal)
        per_batch = _score_per_batch(units, equal, score)
        metric = score.column
    warnings += _grid_warnings(per_batch) + _diverged_warnings(equal, per_batch)
    warnings += _seed_warnings(units, source) + _few_seeds_warning(units, per_batch, source)
    winner, runner = _winner(per_batch, score, metric)
    best_value, margin, gap = _intervals(units, winner, score, draws, seed, source)
    trend = _gap_trend(units, score, gap, source)
    if winner is not None and margin.has_interval and _not_ahead(margin.low):
        warnings.append(
            f"B={winner}'s lead over the next best batch is within the uncertainty: the 90 % interval of its "
            f"margin, {_diff(score, margin.low)} to {_diff(score, margin.high)}, includes no lead; "
            "more seeds would tell them apart."
        )
    return Tuning(score, metric, equal.epoch, per_batch, winner, runner, best_value, margin, trend, source,
                  equal.diverged_runs, tuple(warnings), note)


def _num(x: float) -> Optional[float]:
    return float(x) if math.isfinite(x) else None


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else text


def _not_ahead(low: float) -> bool:
    return low <= 0.0


def _diff(score: Score, x: float) -> str:
    return score.difference(x)


# --- what is resampled ---------------------------------------------------------------------------


def _units(runs: list[Run], equal: EqualEpochs) -> tuple[dict[Key, list[Unit]], str]:
    """(batch, lr) -> units, and what they are: "seeds" (one unit per seed at the common epoch) or
    "evaluations" (one seed everywhere: the run's value plus its evaluation residuals)."""
    per_run = equal.per_run
    col = equal.score.column
    skip = set(equal.failed_lrs)
    groups: dict[Key, list[tuple[str, float, float]]] = {}
    for row in per_run.itertuples(index=False):
        key = (int(getattr(row, "global_batch")), float(getattr(row, "base_lr")))
        if key in skip:
            continue
        groups.setdefault(key, []).append((str(getattr(row, "run")), float(getattr(row, col)),
                                           float(getattr(row, "gap"))))
    if not groups:
        return {}, ""
    if any(len(g) >= 2 for g in groups.values()):
        return {k: [(v, gap) for _, v, gap in g] for k, g in groups.items()}, "seeds"
    by_name = {run.name: run for run in runs}
    units = {k: _eval_units(by_name[g[0][0]], equal, g[0][1], g[0][2]) for k, g in groups.items()}
    return units, "evaluations" if any(len(u) > 1 for u in units.values()) else ""


def _eval_units(run: Run, equal: EqualEpochs, value: float, gap: float) -> list[Unit]:
    """value and gap plus each of the last evaluations' residual from a straight line, scaled so the
    mean of a resample of them varies as one evaluation does: k / sqrt(k - 2) (two fitted parameters)."""
    score = equal.score
    evals = run.eval[np.isfinite(run.eval[score.column]) & np.isfinite(run.eval[score.train_column])]
    evals = evals[evals["epoch"] <= equal.epoch + 1e-9].tail(EVAL_WINDOW)
    k = len(evals)
    if k < MIN_EVAL_WINDOW:
        return [(value, gap)]
    x = evals["epoch"].to_numpy(dtype=float)
    val = evals[score.column].to_numpy(dtype=float)
    train = evals[score.train_column].to_numpy(dtype=float)
    gaps = np.array([score.gap_of(float(v), float(t)) for v, t in zip(val, train)], dtype=np.float64)
    scale = k / math.sqrt(k - 2)
    r_val, r_gap = _residuals(x, val), _residuals(x, gaps)
    return [(value + scale * a, gap + scale * b) for a, b in zip(r_val, r_gap)]


def _residuals(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> list[float]:
    if float(np.ptp(x)) == 0.0:
        return [float(v) for v in y - y.mean()]
    slope, intercept = np.polyfit(x, y, 1)
    return [float(v) for v in y - (slope * x + intercept)]


# --- the statistics, on any (re)sample of units ---------------------------------------------------


def _best_per_batch(units: Units, higher: bool) -> dict[int, tuple[float, float, float]]:
    """batch -> (best lr, its mean value, its mean gap) over the given units."""
    out: dict[int, tuple[float, float, float]] = {}
    for (batch, lr), group in units.items():
        if not group:
            continue
        value = sum(u[0] for u in group) / len(group)
        gap = sum(u[1] for u in group) / len(group)
        held = out.get(batch)
        if held is None or (value > held[1] if higher else value < held[1]):
            out[batch] = (lr, value, gap)
    return out


def _margin(best: Mapping[int, tuple[float, float, float]], winner: int, higher: bool) -> float:
    """How far `winner` is ahead of the best other batch (positive: ahead); NaN without a rival."""
    others = [v for b, (_, v, _) in best.items() if b != winner]
    if winner not in best or not others:
        return math.nan
    mine = best[winner][1]
    return mine - max(others) if higher else min(others) - mine


def _slope(best: Mapping[int, tuple[float, float, float]]) -> float:
    batches = sorted(best)
    return slope_per_doubling(batches, [best[b][2] for b in batches])


def _intervals(units: Units, winner: Optional[int], score: Score, draws: int, seed: int,
               source: str) -> tuple[Interval, Interval, Interval]:
    """(best batch's value, its margin, gap slope per doubling), all from the same resamples."""
    higher = score.higher_is_better
    point = _best_per_batch(units, higher)
    value = point[winner][1] if winner is not None and winner in point else math.nan
    margin = _margin(point, winner, higher) if winner is not None else math.nan
    slope = _slope(point)
    if not source:
        why = "no result to resample" if not units else "one seed and too few evaluations to resample"
        return no_interval(value, why), no_interval(margin, why), no_interval(slope, why)
    rng = np.random.default_rng(seed)
    values, margins, slopes = [], [], []
    for _ in range(draws):
        best = _best_per_batch(resample_groups(units, rng), higher)
        values.append(best[winner][1] if winner is not None and winner in best else math.nan)
        margins.append(_margin(best, winner, higher) if winner is not None else math.nan)
        slopes.append(_slope(best))
    n = smallest_group(units) if source == "seeds" else None
    return (percentile_interval(values, value, LEVEL, n), percentile_interval(margins, margin, LEVEL, n),
            percentile_interval(slopes, slope, LEVEL, n))


def _gap_trend(units: Units, score: Score, slope: Interval, source: str) -> GapTrend:
    best = _best_per_batch(units, score.higher_is_better)
    batches = sorted(best)
    gaps = [best[b][2] for b in batches]
    flat = FLAT_GAP_CHANGE
    if score == LOSS and batches:
        flat = FLAT_LOSS_GAP_SHARE * abs(float(np.median([best[b][1] for b in batches])))
    if len(batches) < 2:
        return GapTrend(batches, gaps, math.nan, math.nan, flat, interval_from=slope.reason)
    span = math.log2(max(batches)) - math.log2(min(batches))
    return GapTrend(batches, gaps, slope.value, slope.value * span, flat, slope.low, slope.high,
                    source if slope.has_interval else slope.reason)


# --- per batch ------------------------------------------------------------------------------------


def _score_per_batch(units: Units, equal: EqualEpochs, score: Score) -> dict[int, BatchTuning]:
    higher = score.higher_is_better
    means = {k: sum(u[0] for u in g) / len(g) for k, g in units.items() if g}
    seeds = equal.per_run.groupby(["global_batch", "base_lr"])["seed"].nunique()
    tried = _tried(list(means) + list(equal.failed_lrs))
    out: dict[int, BatchTuning] = {}
    for batch, lrs in tried.items():
        mine = {lr: means[(batch, lr)] for lr in lrs if (batch, lr) in means}
        if not mine:
            out[batch] = BatchTuning(batch, math.nan, math.nan, 0, score.column, False, lrs, ())
            continue
        lr = (max if higher else min)(mine, key=lambda x: mine[x])
        best = mine[lr]
        within = tuple(sorted(x for x, v in mine.items() if _within(v, best, score)))
        n = int(seeds.get((batch, lr), 1))
        out[batch] = BatchTuning(batch, lr, best, n, score.column, _edge(lr, lrs), lrs, within)
    return out


def _within(value: float, best: float, score: Score) -> bool:
    if score.higher_is_better:
        return best - value <= ROBUST_ACCURACY + 1e-12
    return value - best <= ROBUST_LOSS_SHARE * abs(best) + 1e-12


def _tried(keys: Iterable[Key]) -> dict[int, tuple[float, ...]]:
    out: dict[int, set[float]] = {}
    for batch, lr in keys:
        out.setdefault(batch, set()).add(lr)
    return {b: tuple(sorted(lrs)) for b, lrs in sorted(out.items())}


def _edge(lr: float, tried: Sequence[float]) -> Edge:
    if len(tried) < 2:
        return "only"
    if lr == min(tried):
        return "low"
    if lr == max(tried):
        return "high"
    return False


def _steps_per_batch(runs: list[Run], diverged_lrs: Sequence[Key], warnings: list[str]) -> dict[int, BatchTuning]:
    """Each batch's best lr by steps to the study's target: every seed reaching it first, then the
    fewest mean steps."""
    target, note = study_target(runs)
    if target is None:
        warnings.append(_sentence(f"no best learning rate per batch by steps to target: {note}"))
        return {}
    skip = set(diverged_lrs)
    groups: dict[Key, list[float]] = {}
    for run in runs:
        if run.status.name != "completed":
            continue
        key = (run.global_batch, float(run.attrs["base_lr"]))
        if key not in skip:
            groups.setdefault(key, []).append(steps_to_target(run, target).step)
    out: dict[int, BatchTuning] = {}
    for batch, lrs in _tried(list(groups) + list(diverged_lrs)).items():
        reached = {lr: [s for s in groups[(batch, lr)] if math.isfinite(s)] for lr in lrs if (batch, lr) in groups}
        ranked = {lr: (len(groups[(batch, lr)]) - len(s), float(np.mean(s))) for lr, s in reached.items() if s}
        if not ranked:
            warnings.append(f"B={batch}: no learning rate tried reached the target {target.describe()}.")
            out[batch] = BatchTuning(batch, math.nan, math.nan, 0, STEPS_METRIC, False, lrs, ())
            continue
        lr = min(ranked, key=lambda x: ranked[x])
        missed, steps = ranked[lr]
        within = tuple(sorted(
            x for x, (m, s) in ranked.items() if m == 0 and missed == 0 and s <= (1 + ROBUST_STEPS_SHARE) * steps
        ) or (lr,))
        out[batch] = BatchTuning(batch, lr, steps, len(groups[(batch, lr)]), STEPS_METRIC, _edge(lr, lrs), lrs,
                                 within)
    return out


def _winner(per_batch: Mapping[int, BatchTuning], score: Score, metric: str) -> tuple[Optional[int], Optional[int]]:
    """(best batch, runner-up) at equal epochs; None where there is none (or the metric is steps)."""
    if metric == STEPS_METRIC:
        return None, None
    rows = [r for r in per_batch.values() if math.isfinite(r.value)]
    rows.sort(key=lambda r: -r.value if score.higher_is_better else r.value)
    if not rows:
        return None, None
    return rows[0].batch, rows[1].batch if len(rows) > 1 else None


# --- warnings -------------------------------------------------------------------------------------


def _grid_warnings(per_batch: Mapping[int, BatchTuning]) -> list[str]:
    rows = [r for _, r in sorted(per_batch.items()) if math.isfinite(r.lr)]
    out: list[str] = []
    single = [r for r in rows if r.at_grid_edge == "only"]
    if rows and len(single) == len(rows):
        lrs = sorted({r.lr for r in rows})
        out.append(
            f"Every batch size was run at one learning rate (base lr {', '.join(f'{x:g}' for x in lrs)}): "
            "the batches are not each at their best learning rate, and batch-size conclusions can flip when "
            "they are (Shallue et al. 2019); run a grid of learning rates per batch."
        )
    else:
        out += [f"B={r.batch}: only one learning rate tried (base lr {r.lr:g}); it may not be this batch's best."
                for r in single]
    for r in rows:
        if r.at_grid_edge == "low":
            out.append(f"B={r.batch}: the best lr is the smallest tried ({r.lr:g}); extend the grid down.")
        elif r.at_grid_edge == "high":
            out.append(f"B={r.batch}: the best lr is the largest tried ({r.lr:g}); extend the grid up.")
    return out


def _diverged_warnings(equal: EqualEpochs, per_batch: Mapping[int, BatchTuning]) -> list[str]:
    out: list[str] = []
    if equal.diverged_runs:
        n = len(equal.diverged_runs)
        settings = ", ".join(f"B={b} lr {lr:g}" for b, lr in equal.diverged_lrs)
        out.append(
            f"{n} run{'s' if n != 1 else ''} diverged ({settings}): reported as diverged, not as results; a "
            "learning rate that diverged on any seed is never a batch's best."
        )
    if equal.stalled_runs:
        n = len(equal.stalled_runs)
        settings = ", ".join(f"B={b} lr {lr:g}" for b, lr in equal.stalled_lrs)
        out.append(
            f"{n} completed run{'s' if n != 1 else ''} did not learn ({settings}: {equal.score.noun} at the "
            "comparison hardly better than at the first evaluation, as after a divergence without a non-finite "
            "loss); treated like diverged runs."
        )
    for b, r in sorted(per_batch.items()):
        if not math.isfinite(r.lr) and r.metric != STEPS_METRIC:
            out.append(f"B={b}: every learning rate tried diverged or did not learn, so it has no result "
                       "(it is not ranked).")
    return out


def _few_seeds_warning(units: Units, per_batch: Mapping[int, BatchTuning], source: str) -> list[str]:
    """A warning when the best lrs have 2 to FEW_SEEDS - 1 seeds: their intervals rest on the t widening."""
    if source != "seeds":
        return []
    counts = [len(units[(b, r.lr)]) for b, r in per_batch.items() if (b, r.lr) in units]
    few = [n for n in counts if 2 <= n < FEW_SEEDS]
    if not few:
        return []
    return [
        f"{min(few)} seed{'s' if min(few) != 1 else ''} at some batch's best lr: with so few seeds the intervals "
        "are the bootstrap's widened by a Student-t factor, which assumes a roughly normal spread of seeds; "
        f"read them as rough, or run {FEW_SEEDS} or more seeds."
    ]


def _seed_warnings(units: Units, source: str) -> list[str]:
    if source == "evaluations":
        return [
            "One seed per learning rate and batch: the intervals come from the spread of each run's last "
            "evaluations and do not include seed-to-seed variation; run 2 or more seeds (3 is better)."
        ]
    if not units:
        return []
    if not source:
        return ["One seed per learning rate and batch and too few evaluations: no interval; run 2 or more seeds."]
    single = sorted(k for k, g in units.items() if len(g) < 2)
    if not single:
        return []
    listed = ", ".join(f"B={b} lr {lr:g}" for b, lr in single)
    return [f"One seed at {listed}: seed-to-seed variation there is not in the intervals."]
