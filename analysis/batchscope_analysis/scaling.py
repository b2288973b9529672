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
from collections import Counter
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from batchscope_analysis.intervals import DRAWS, LEVEL, SEED, Interval, bootstrap, no_interval, round_to_interval
from batchscope_analysis.load import Run
from batchscope_analysis.target import (
    Target, eval_interval, previous_eval_step, steps_to_target, study_target,
)
from batchscope_analysis.textfmt import fmt

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


# ---------------------------------------------------------------------------
# Uncertainty: intervals on S_min, E_min and B_crit, and time to target.
#
# The estimand is S(B) of the mean steps to target over seeds, each batch at
# its best learning rate (the lr with the fewest steps, `choose_lr`), each
# seed's steps the middle of its evaluation bracket (fit_intervals). The
# fewest steps over seeds (fit_study, the report's figure) has no stable
# bootstrap: a resampled minimum can only go up. With one seed the two agree.
#
# Two things are resampled in each bootstrap draw:
# - seeds, with replacement within each batch (when a batch has several);
# - each seed's hit step, uniformly within (previous evaluation, hit step]:
#   the target was met somewhere after the last evaluation that missed it,
#   so that is what one seed's steps-to-target is known to.
# The fits of the draws are solved in one vectorized step (the same relative
# least squares as fit_steps_vs_batch, by its normal equations).


@dataclass(frozen=True)
class Hit:
    """One run's first evaluation meeting the target, and its wall clock there."""

    run: str
    batch: int
    lr: float
    seed: int
    step: float  # NaN: never reached
    prev_step: float  # the target was met in (prev_step, step]
    wall_s: float  # /train/wall_s at `step`; NaN when not reached or no row
    eval_every: float  # median steps between evaluations
    evals_before: int  # periodic evaluations timed inside wall_s: eval steps in (0, step)
    shared: str  # which ranks share a device, "" when none do
    models: tuple[str, ...]  # device models used (sorted, distinct)
    hosts: tuple[str, ...]  # hosts used (sorted, distinct)

    @property
    def reached(self) -> bool:
        return math.isfinite(self.step) and self.step > 0


def device_model(device: str) -> str:
    """`cuda:0 NVIDIA H100 80GB HBM3 GPU-1a2b...` -> `NVIDIA H100 80GB HBM3`; `cpu` -> `cpu`.

    The index and the uuid name one card; the model is what sets its speed.
    """
    words = device.split()
    if words and words[0].startswith("cuda"):
        words = words[1:]
    if words and words[-1].upper().startswith(("GPU-", "MIG-")):
        words = words[:-1]
    return " ".join(words) or device


def shared_devices(hosts: Sequence[str], devices: Sequence[str]) -> str:
    """Which ranks share one device (same host and same device string), or "".

    Ranks on one device take turns on it, so their steps are slower than the
    same batch on a device each: such a run's wall time is not this
    hardware's time for its batch. On CPU, `cpu` ranks on one host share its cores.
    """
    ranks: dict[tuple[str, str], list[int]] = {}
    for rank, key in enumerate(zip(hosts, devices)):
        ranks.setdefault(key, []).append(rank)
    parts = [f"ranks {', '.join(map(str, r))} on {dev} of {host}" for (host, dev), r in ranks.items() if len(r) > 1]
    return "; ".join(parts)


def _wall_at(run: Run, step: float) -> float:
    if not math.isfinite(step) or not len(run.train):
        return math.nan
    rows = run.train.loc[run.train["step"] == step, "wall_s"]
    return float(rows.iloc[0]) if len(rows) else math.nan


def run_hit(run: Run, target: Target) -> Hit:
    """Steps, the step bracket and the wall time of `run`'s first hit of `target`."""
    step = steps_to_target(run, target).step
    hosts = [str(h) for h in run.layout.get("hosts", [])]
    devices = [str(d) for d in run.layout.get("devices", [])]
    eval_steps = run.eval["step"].to_numpy(dtype=float) if len(run.eval) else np.zeros(0)
    before = int(np.count_nonzero((eval_steps > 0) & (eval_steps < step))) if math.isfinite(step) else 0
    return Hit(
        run=run.name, batch=run.global_batch, lr=float(run.attrs["base_lr"]), seed=int(run.attrs["seed"]),
        step=step, prev_step=previous_eval_step(run, step), wall_s=_wall_at(run, step),
        eval_every=eval_interval(run), evals_before=before, shared=shared_devices(hosts, devices),
        models=tuple(sorted({device_model(d) for d in devices})), hosts=tuple(sorted(set(hosts))),
    )


def choose_lr(hits: Sequence[Hit]) -> float:
    """The base lr with the fewest steps to target among one batch's runs.

    Ranked by the median over seeds with a seed that never reached counted
    as infinitely many steps (an lr half of whose seeds fail does not win),
    then by more seeds reaching, then by the mean of those that did.
    NaN when no run reached the target.
    """
    by_lr: dict[float, list[float]] = {}
    for h in hits:
        by_lr.setdefault(h.lr, []).append(h.step if h.reached else math.inf)
    ranked = []
    for lr, steps in by_lr.items():
        finite = [s for s in steps if math.isfinite(s)]
        if finite:
            ranked.append((float(np.median(steps)), -len(finite), float(np.mean(finite)), lr))
    return min(ranked)[3] if ranked else math.nan


def best_lr_hits(hits: Iterable[Hit]) -> dict[int, list[Hit]]:
    """batch -> the runs at that batch's best lr (choose_lr), by seed; batches where none reached left out."""
    by_batch: dict[int, list[Hit]] = {}
    for h in hits:
        by_batch.setdefault(h.batch, []).append(h)
    out: dict[int, list[Hit]] = {}
    for batch in sorted(by_batch):
        lr = choose_lr(by_batch[batch])
        if math.isfinite(lr):
            out[batch] = sorted((h for h in by_batch[batch] if h.lr == lr), key=lambda h: (h.seed, h.run))
    return out


def fit_draws(
    batch: npt.ArrayLike, steps: npt.ArrayLike,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(S_min, E_min, B_crit) of the relative least-squares fit of each row of `steps` [draws, batches].

    B_crit is +inf where S_min <= 0 (steps still halve at the largest batch),
    0 where E_min <= 0 < S_min, NaN where the fit is degenerate.
    """
    b = np.asarray(batch, dtype=float)[None, :]
    w = 1.0 / np.asarray(steps, dtype=float)
    a11, a12, a22 = (w**2).sum(1), (w**2 / b).sum(1), (w**2 / b**2).sum(1)
    r1, r2 = w.sum(1), (w / b).sum(1)
    det = a11 * a22 - a12**2
    with np.errstate(divide="ignore", invalid="ignore"):
        s_min = (r1 * a22 - r2 * a12) / det
        e_min = (a11 * r2 - a12 * r1) / det
        b_crit = np.where(s_min > 0, np.maximum(e_min, 0.0) / s_min, np.inf)
    b_crit = np.where(np.isfinite(s_min) & np.isfinite(e_min) & (det > 0), b_crit, np.nan)
    return s_min, e_min, b_crit


def draw_steps(
    groups: Mapping[int, Sequence[tuple[float, float]]], draws: int, rng: np.random.Generator,
) -> npt.NDArray[np.float64]:
    """[draws, batches] mean steps per batch: seeds resampled with replacement
    within each batch, each seed's step drawn uniformly in (prev, step]."""
    columns = []
    for batch in sorted(groups):
        pairs = np.asarray(groups[batch], dtype=float).reshape(-1, 2)
        n = pairs.shape[0]
        idx = rng.integers(0, n, (draws, n))
        step, prev = pairs[idx, 0], pairs[idx, 1]
        columns.append((step - rng.random((draws, n)) * (step - prev)).mean(axis=1))
    return np.column_stack(columns)


def quantile_interval(value: float, draws: npt.ArrayLike, level: float = LEVEL) -> Interval:
    """The central `level` range of the draws, which may hold +inf (an unbounded end); NaN draws dropped."""
    x = np.asarray(draws, dtype=float)
    x = x[~np.isnan(x)]
    if x.size < 10:
        return no_interval(value, f"only {x.size} resampled fits were usable")
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(x, [tail, 1.0 - tail], method="inverted_cdf")
    return Interval(value, float(low), float(high), level)


@dataclass(frozen=True)
class FitIntervals:
    """S_min, E_min and B_crit with intervals; b_crit.value NaN and `reason` when there is none."""

    s_min: Interval
    e_min: Interval
    b_crit: Interval
    reason: str
    fit: StepsFit


def fit_intervals(
    groups: Mapping[int, Sequence[tuple[float, float]]],
    *, level: float = LEVEL, draws: int = DRAWS, seed: int = SEED,
) -> FitIntervals:
    """The S(B) fit of the mean steps per batch and its bootstrap intervals.

    `groups`: batch -> (step, previous evaluation step) of each seed that
    reached the target. A seed met the target somewhere in (previous, step],
    so its steps are taken as the middle of that bracket: the recorded step
    (fit_study's) overstates them by half an evaluation interval on average,
    and the bootstrap draws, uniform in the bracket, centre on the middle.
    """
    groups = {b: list(v) for b, v in groups.items() if len(v)}
    batches = sorted(groups)
    means = [float(np.mean([(p[0] + p[1]) / 2.0 for p in groups[b]])) for b in batches]
    fit = fit_steps_vs_batch(batches, means)
    spread = any(len(v) > 1 or any(p[0] > p[1] for p in v) for v in groups.values())
    if not fit.ok or not spread:
        why = fit.reason or "one seed per batch and every hit at its first evaluation: nothing to resample"
        return FitIntervals(no_interval(fit.s_min, why), no_interval(fit.e_min, why), no_interval(fit.b_crit, why),
                            fit.reason, fit)
    s_min, e_min, b_crit = fit_draws(batches, draw_steps(groups, draws, np.random.default_rng(seed)))
    return FitIntervals(quantile_interval(fit.s_min, s_min, level), quantile_interval(fit.e_min, e_min, level),
                        quantile_interval(fit.b_crit, b_crit, level), "", fit)


# ---------------------------------------------------------------------------
# Time to target on this hardware.
#
# /train/wall_s is the host clock at the end of each step, counted from the
# start of the training loop (src/train/trainer.cpp): after start-up, data
# loading and the step-0 evaluation, and including everything done between
# steps since, i.e. the periodic evaluations before the hit (Hit.evals_before),
# read-backs of the logged rows and checkpoints. The time to target is
# wall_s at the step of the evaluation that met the target, before that
# evaluation itself ran. A resumed run continues the clock of its checkpoint.
# On a GPU the clock is the host's when the step was queued; the device may
# still be behind by the steps since the last read-back (log.every_steps),
# which every evaluation waits for, so the lag does not accumulate.


@dataclass(frozen=True)
class Hardware:
    """What most runs used: the hardware the study's times are judged on."""

    models: tuple[str, ...]
    hosts: tuple[str, ...]
    shared: bool  # most runs had ranks sharing a device (the usual CPU study: ranks split a host's cores)


def reference_hardware(hits: Sequence[Hit]) -> Hardware:
    if not hits:
        return Hardware((), (), False)
    models = Counter(h.models for h in hits).most_common(1)[0][0]
    hosts = Counter(h.hosts for h in hits).most_common(1)[0][0]
    shared = Counter(bool(h.shared) for h in hits).most_common(1)[0][0]
    return Hardware(models, hosts, shared)


def not_comparable(hit: Hit, reference: Hardware) -> str:
    """Why `hit`'s wall time is not this study's hardware time for its batch, "" when it is.

    Not comparable: some ranks share a device where most runs' ranks do not
    (where most do, as when every run splits one CPU host, all take turns alike);
    other device models than most runs used; or hosts outside the set most runs
    used (a run on fewer of the same hosts is fine: a smaller batch on fewer
    devices is the usual study).
    """
    models, hosts = reference.models, reference.hosts
    reasons = []
    if hit.shared and not reference.shared:
        reasons.append(f"{hit.run}: {hit.shared}")
    if hit.models != models:
        reasons.append(f"{hit.run} ran on {', '.join(hit.models) or 'unknown devices'}, most runs on "
                       f"{', '.join(models) or 'unknown devices'}")
    other = sorted(set(hit.hosts) - set(hosts))
    if other:
        reasons.append(f"{hit.run} ran on host{'s' if len(other) > 1 else ''} {', '.join(other)}, outside "
                       f"{', '.join(hosts)} where most runs ran")
    return "; ".join(reasons)


@dataclass(frozen=True)
class BatchTime:
    """One batch's time to target at its best lr: means over the seeds that reached it."""

    batch: int
    lr: float
    seeds: int
    steps: float
    samples: float
    wall: Interval  # mean wall_s over seeds, interval across seeds
    evals_before: float
    why_not_comparable: str

    @property
    def comparable(self) -> bool:
        return not self.why_not_comparable


def batch_times(best: Mapping[int, Sequence[Hit]], reference: Hardware) -> list[BatchTime]:
    """Time to target per batch (batches with no finite wall time at the hit left out)."""
    out = []
    for batch, hits in sorted(best.items()):
        reached = [h for h in hits if h.reached and math.isfinite(h.wall_s)]
        if not reached:
            continue
        walls = [h.wall_s for h in reached]
        steps = float(np.mean([h.step for h in reached]))
        why = "; ".join(r for r in (not_comparable(h, reference) for h in reached) if r)
        out.append(BatchTime(
            batch=batch, lr=reached[0].lr, seeds=len(reached), steps=steps, samples=steps * batch,
            wall=bootstrap(walls, lambda w: float(np.mean(w))),
            evals_before=float(np.mean([h.evals_before for h in reached])), why_not_comparable=why,
        ))
    return out


def fastest(times: Sequence[BatchTime]) -> Optional[BatchTime]:
    """The batch with the least mean wall time to target, among the comparable ones when there are any."""
    pool = [t for t in times if t.comparable] or list(times)
    return min(pool, key=lambda t: (t.wall.value, t.batch)) if pool else None


# ---------------------------------------------------------------------------
# Warnings and the answers.json part.


def _fmt_interval(iv: Interval) -> str:
    """`1,190 (90 % interval 700 to 2,400)`, figures as the interval's width supports."""
    if not iv.has_interval and not (math.isfinite(iv.low) and iv.high == math.inf):
        return fmt(iv.value)
    if iv.high == math.inf:
        return f"{fmt(iv.value)} ({100 * iv.level:.0f} % interval from {fmt(iv.low)}, no upper bound)"
    width = iv.high - iv.low

    def r(x: float) -> str:
        return fmt(round_to_interval(x, width))

    return f"{r(iv.value)} ({100 * iv.level:.0f} % interval {r(iv.low)} to {r(iv.high)})"


def scaling_warnings(best: Mapping[int, Sequence[Hit]], tried: Sequence[int], fits: FitIntervals) -> list[str]:
    """Caveats on the fit: one seed, S_min below the evaluation interval, too few batches, B_crit out of range."""
    out = []
    reached = {b: [h for h in v if h.reached] for b, v in best.items()}
    reached = {b: v for b, v in reached.items() if v}
    if reached and max(len(v) for v in reached.values()) == 1:
        out.append("one seed per batch: the steps-to-target intervals reflect only where between two "
                   "evaluations each run met the target, not the seed-to-seed spread")
    for b, v in best.items():
        missed = [h for h in v if not h.reached]
        if missed and len(missed) < len(v):
            out.append(f"B={b}: {len(missed)} of {len(v)} seeds at base lr {v[0].lr:g} never reached the "
                       "target; its mean steps are over the seeds that did (optimistic)")
    if len(reached) < MIN_FIT_BATCHES:
        out.append(f"only {len(reached)} batch size{'s' if len(reached) != 1 else ''} reached the target; "
                   f"an S(B) fit needs at least {MIN_FIT_BATCHES}")
    if not fits.fit.ok:
        return out
    largest = max(reached)
    every = float(np.nanmedian([h.eval_every for h in reached[largest]]))
    if math.isfinite(every) and fits.fit.s_min < every:
        out.append(f"S_min = {fmt(fits.fit.s_min)} steps is below the evaluation interval ({fmt(every)} steps at "
                   f"B={largest}): the steps at large batches are known only to within an evaluation, so S_min and "
                   "B_crit are poorly determined; evaluate more often")
    b_crit = fits.b_crit
    if tried and not min(tried) <= b_crit.value <= max(tried):
        out.append(f"B_crit = {fmt(b_crit.value)} lies outside the batches tried ({min(tried)} to {max(tried)}): "
                   "it is an extrapolation of the fit")
    if b_crit.high == math.inf:
        out.append("the B_crit interval has no upper bound: in some resampled fits steps still fall like 1/B "
                   "at the largest batch")
    return out


def time_warnings(times: Sequence[BatchTime], best: Mapping[int, Sequence[Hit]]) -> list[str]:
    out = [f"time to target at B={t.batch} is not comparable: {t.why_not_comparable}"
           for t in times if not t.comparable]
    no_wall = [b for b, v in best.items() if any(h.reached for h in v) and b not in {t.batch for t in times}]
    if no_wall:
        out.append(f"no /train/wall_s row at the target step for B={', '.join(map(str, no_wall))}")
    evals = {t.batch: t.evals_before for t in times}
    if evals and max(evals.values()) != min(evals.values()):
        out.append("times to target include the periodic evaluations before the hit, and the batches ran "
                   "different numbers of them (" + ", ".join(f"B={b}: {n:g}" for b, n in sorted(evals.items()))
                   + "); with evaluations every so many steps, batches needing more steps pay for more")
    return out


@dataclass(frozen=True)
class ScalingStudy:
    """Everything scaling_answers reports, as objects (findings renders it)."""

    target: Optional[Target]
    fits: FitIntervals
    times: list[BatchTime]
    fastest: Optional[BatchTime]
    warnings: list[str]


def scaling_study(runs: Iterable[Run], target: Optional[Target] = None) -> ScalingStudy:
    """Fit with intervals, time to target per batch, and caveats; `target` None: the study's own."""
    runs = list(runs)
    if target is None:
        target, note = study_target(runs)
    else:
        note = ""
    if target is None:
        nan = math.nan
        why = f"no target: {note}"
        empty = FitIntervals(no_interval(nan, why), no_interval(nan, why), no_interval(nan, why), why,
                             StepsFit(nan, nan, nan, 0, reason=why))
        return ScalingStudy(None, empty, [], None, [])
    hits = [run_hit(run, target) for run in runs]
    best = best_lr_hits(hits)
    groups = {b: [(h.step, h.prev_step) for h in v if h.reached] for b, v in best.items()}
    fits = fit_intervals(groups)
    if not best:
        nan = math.nan
        why = f"no run reached the target ({target.describe()})"
        fits = FitIntervals(no_interval(nan, why), no_interval(nan, why), no_interval(nan, why), why,
                            StepsFit(nan, nan, nan, 0, reason=why))
    times = batch_times(best, reference_hardware(hits))
    tried = sorted({h.batch for h in hits})
    warnings = scaling_warnings(best, tried, fits) + time_warnings(times, best)
    return ScalingStudy(target, fits, times, fastest(times), warnings)


def _num(x: float) -> Optional[float]:
    return float(x) if math.isfinite(x) else None


def scaling_answers(runs: Iterable[Run], target: Optional[Target] = None) -> dict[str, Any]:
    """The critical batch, S_min, E_min with 90 % intervals, time to target per batch and the fastest batch.

    JSON-ready: {"b_crit": {value, low, high} or None, "b_crit_reason": str,
    "s_min", "e_min": {value, low, high} (None where missing),
    "time_to_target_per_batch": {batch: {wall_s, low, high, steps, samples,
    lr, seeds, evals_before, comparable, why_not_comparable}},
    "fastest_batch": {batch, wall_s, low, high, comparable} or None,
    "warnings": [...]}. An upper end of +inf (unbounded) is None.
    """
    study = scaling_study(runs, target)
    fits = study.fits
    per_batch = {
        t.batch: {
            "wall_s": _num(t.wall.value), "low": _num(t.wall.low), "high": _num(t.wall.high),
            "steps": _num(t.steps), "samples": _num(t.samples), "lr": t.lr, "seeds": t.seeds,
            "evals_before": t.evals_before, "comparable": t.comparable,
            "why_not_comparable": t.why_not_comparable,
        }
        for t in study.times
    }
    best = study.fastest
    return {
        "b_crit": fits.b_crit.as_dict() if not fits.reason else None,
        "b_crit_reason": fits.reason,
        "s_min": fits.s_min.as_dict(),
        "e_min": fits.e_min.as_dict(),
        "time_to_target_per_batch": per_batch,
        "fastest_batch": None if best is None else {
            "batch": best.batch, "wall_s": _num(best.wall.value), "low": _num(best.wall.low),
            "high": _num(best.wall.high), "comparable": best.comparable,
        },
        "warnings": list(study.warnings),
    }


def _seconds(iv: Interval) -> str:
    if not iv.has_interval:
        return f"{iv.value:.3g} s"
    width = iv.high - iv.low

    def r(x: float) -> str:
        return f"{round_to_interval(x, width):.3g}"

    return f"{r(iv.value)} s ({100 * iv.level:.0f} % interval {r(iv.low)} to {r(iv.high)} s)"


def scaling_text(study: ScalingStudy) -> str:
    """The report's sentences on the intervals, the time to target and the caveats."""
    fits, parts = study.fits, []
    if not fits.reason:
        parts.append(
            "Across seeds and evaluations (mean steps at each batch's best lr, each hit taken midway between the "
            "evaluation that missed the target and the one that met it; bootstrap over seeds and over where in "
            f"that bracket the hit fell): B_crit = {_fmt_interval(fits.b_crit)} samples, "
            f"S_min = {_fmt_interval(fits.s_min)} steps, E_min = {_fmt_interval(fits.e_min)} samples."
        )
    if study.times:
        listed = ", ".join(f"B={t.batch}: {t.wall.value:.3g} s" + ("" if t.comparable else " (not comparable)")
                           for t in study.times)
        parts.append(
            f"Wall time to the target on this hardware (/train/wall_s at the evaluated step that met it: from the "
            f"start of training, periodic evaluations before it included; mean over seeds at each batch's best lr): "
            f"{listed}."
        )
    if study.fastest is not None:
        parts.append(f"Fastest to the target: B={study.fastest.batch}, {_seconds(study.fastest.wall)}.")
    if study.warnings:
        parts.append("Caveats: " + "; ".join(study.warnings) + ".")
    return " ".join(parts)
