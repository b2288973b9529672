"""Gradient noise scale from the raw per-step norms of a run file.

The writer stores, per step, s_k = |g_k|^2 of the n*m micro-batch gradients
(/gns/sqnorm_micro), S = |G|^2 of the global gradient (/gns/sqnorm_global),
and the micro-batch sizes b_k (/layout/batch_micro). Under sampling without
replacement from N training samples (docs/metrics.md)

    E |g_b|^2 = |G|^2 + tr(Sigma) x(b),    x(b) = (N/b - 1) / (N - 1).

`resmooth` recomputes the per-step estimates and B_simple exactly as the
writer does (so other EMA factors can be tried after the fact); `fit_noise`
fits the line above by least squares over windows of steps, with bootstrap
confidence intervals, as an estimate that does not depend on an EMA.

The study's B_simple (`b_simple_summary`, `noise_answers`) re-smooths every
run, old files too, with one EMA window counted in training samples, factor
exp(-B / window) per step, so that runs at different batch sizes average the
same amount of data (docs/metrics.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.signal import lfilter

from batchscope_analysis.intervals import Interval, bootstrap_groups, no_interval
from batchscope_analysis.load import Run

# Default bootstrap: 200 resamples, 5th..95th percentile (a 90 % interval).
N_BOOT: int = 200
CI_PERCENTILES: tuple[float, float] = (5.0, 95.0)
# A bootstrap B_noise interval needs |G|^2 > 0 in most resamples to mean anything.
_MIN_VALID_RESAMPLES: float = 0.5


def finite_population_factor(b: npt.ArrayLike, train_size: int) -> npt.NDArray[np.float64]:
    """x(b) = (N/b - 1)/(N - 1); 1/b when N <= 0 (an infinite set), 0 when N == 1.

    The same cases as src/noise/estimator.cpp, so resmooth matches the writer.
    """
    b = np.asarray(b, dtype=np.float64)
    if train_size <= 0:
        return 1.0 / b
    if train_size == 1:
        return np.zeros_like(b)
    n = float(train_size)
    return (n / b - 1.0) / (n - 1.0)


@dataclass(frozen=True)
class RawNoise:
    """One run's raw noise statistics, as float64 arrays."""

    batch_micro: npt.NDArray[np.float64]  # b_k, [K]
    s_micro: npt.NDArray[np.float64]  # s_k per step, [T, K]
    s_global: npt.NDArray[np.float64]  # S per step, [T]
    global_batch: int  # B
    train_size: int  # N

    @property
    def weights(self) -> npt.NDArray[np.float64]:
        return self.batch_micro / float(self.global_batch)

    @property
    def x_micro(self) -> npt.NDArray[np.float64]:
        return finite_population_factor(self.batch_micro, self.train_size)

    @property
    def x_global(self) -> float:
        return float(finite_population_factor(np.array([self.global_batch]), self.train_size)[0])

    @property
    def separable(self) -> bool:
        """False with a single small batch: it coincides with the big one."""
        return len(self.batch_micro) > 1


def raw_noise(run: Run) -> RawNoise:
    # B is the sum of the micro-batches by the schema; taking the sum keeps
    # the weights summing to 1 even if an attribute were off.
    batch_micro = run.batch_micro.astype(np.float64)
    return RawNoise(
        batch_micro=batch_micro,
        s_micro=run.sqnorm_micro(),
        s_global=run.gns["sqnorm_global"].to_numpy(dtype=np.float64),
        global_batch=int(batch_micro.sum()),
        train_size=run.train_size,
    )


def per_step_estimates(raw: RawNoise) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(g2_est, trsigma_est) per step, both NaN when nothing can be separated.

    trsigma = (s_bar - S) / (x_bar - x(B)), g2 = S - trsigma x(B), with
    s_bar and x_bar weighted by sample share b_k / B (docs/metrics.md).
    """
    steps = raw.s_global.shape[0]
    nan = np.full(steps, np.nan)
    if not raw.separable:
        return nan, nan.copy()
    w, x = raw.weights, raw.x_micro
    # Summed in index order like the writer's loops, not by BLAS, so that
    # differences of close numbers round the same way.
    x_bar = 0.0
    for k in range(len(w)):
        x_bar += float(w[k]) * float(x[k])
    denom = x_bar - raw.x_global
    if denom == 0.0:
        return nan, nan.copy()
    s_bar = np.zeros(steps)
    for k in range(len(w)):
        s_bar = s_bar + w[k] * raw.s_micro[:, k]
    trsigma = (s_bar - raw.s_global) / denom
    g2 = raw.s_global - trsigma * raw.x_global
    return g2, trsigma


def ema_ratio(numerator: npt.ArrayLike, denominator: npt.ArrayLike, beta: float) -> npt.NDArray[np.float64]:
    """EMA(numerator) / EMA(denominator), bias-corrected, skipping non-finite steps.

    A step where either value is not finite leaves both EMAs unchanged and
    gets NaN, as in the writer: one bad step must not poison the rest. The
    bias correction 1 - beta^t counts only the steps taken into the EMAs.
    """
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(numerator.shape, np.nan)
    ok = np.isfinite(numerator) & np.isfinite(denominator)
    if not ok.any():
        return out
    # lfilter computes m_t = beta m_{t-1} + (1 - beta) v_t over the kept steps.
    coeffs = ([1.0 - beta], [1.0, -beta])
    ema_num = lfilter(*coeffs, numerator[ok])
    ema_den = lfilter(*coeffs, denominator[ok])
    # Repeated multiplication, as the writer keeps beta^t, rounds the same way.
    correction = 1.0 - np.cumprod(np.full(int(ok.sum()), beta))
    with np.errstate(divide="ignore", invalid="ignore"):
        out[ok] = (ema_num / correction) / (ema_den / correction)
    return out


def resmooth(run: Run, beta: Optional[float] = None) -> pd.DataFrame:
    """Per-step g2_est, trsigma_est and b_simple recomputed from the raw norms.

    With beta = the run's ema_beta (the default) this reproduces /gns; other
    factors trade lag for noise. Columns: step, samples, train_loss, g2_est,
    trsigma_est, b_simple.
    """
    beta = float(run.attrs["ema_beta"]) if beta is None else float(beta)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"EMA factor beta must be in [0, 1), got {beta}")
    raw = raw_noise(run)
    g2, trsigma = per_step_estimates(raw)
    return pd.DataFrame({
        "step": run.train["step"].to_numpy(),
        "samples": run.train["samples"].to_numpy(),
        "train_loss": run.train["loss"].to_numpy(dtype=float),
        "g2_est": g2,
        "trsigma_est": trsigma,
        "b_simple": ema_ratio(trsigma, g2, beta),
    })


FIT_COLUMNS: tuple[str, ...] = (
    "window", "step_first", "step_last", "step_mid", "samples_mid", "train_loss_mid", "steps_used",
    "g2", "g2_lo", "g2_hi", "trsigma", "trsigma_lo", "trsigma_hi", "b_noise", "b_noise_lo", "b_noise_hi",
)


def fit_noise(
    run: Run,
    window: int,
    n_boot: int = N_BOOT,
    ci: tuple[float, float] = CI_PERCENTILES,
    seed: int = 0,
) -> pd.DataFrame:
    """Least-squares fit of E|g_b|^2 = |G|^2 + tr(Sigma) x(b) per window of steps.

    Windows are consecutive blocks of `window` rows; a trailing remainder
    shorter than half a window is dropped, so every point rests on
    comparable data. Steps with any non-finite norm are left out.

    Observations of a step: (x(b_k), s_k) for each micro-batch with weight
    b_k / B, and (x(B), S) with weight 1. So every step counts equally (total
    weight 2), the small-batch and the big-batch side weigh the same, and
    with equal micro-batches a one-step window gives exactly the per-step
    estimator of docs/metrics.md (the weighted mean of the s_k is s_bar).

    Confidence intervals: `n_boot` bootstrap resamples of the window's steps
    (with replacement, so the correlation of one step's norms is kept), the
    `ci` percentiles (default 5th and 95th: a 90 % interval) of the refitted
    values. The RNG is seeded by (seed, window index): results are
    reproducible and do not depend on which other windows exist. B_noise =
    tr(Sigma)/|G|^2 is NaN where |G|^2 <= 0, and its interval is NaN when
    fewer than half the resamples have |G|^2 > 0.

    Columns: FIT_COLUMNS; step_mid is the middle of the window's steps,
    samples_mid = step_mid * B, train_loss_mid the mean /train/loss over it.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1 step, got {window}")
    raw = raw_noise(run)
    steps = run.train["step"].to_numpy(dtype=np.float64)
    loss = run.train["loss"].to_numpy(dtype=np.float64)
    stats = _step_moments(raw)
    rows = []
    total = len(steps)
    starts = list(range(0, total, window))
    for index, start in enumerate(starts):
        stop = min(total, start + window)
        if stop - start < max(1, window / 2.0):
            break
        rows.append(_fit_window(index, start, stop, raw, steps, loss, stats, n_boot, ci, seed))
    return pd.DataFrame(rows, columns=list(FIT_COLUMNS))


@dataclass(frozen=True)
class _Moments:
    """Per-step weighted sums of the least-squares normal equations.

    The x positions and weights are the same every step (fixed layout), so
    sum(w), sum(w x), sum(w x^2) are constants and only the y sums vary.
    """

    sw: float
    swx: float
    swxx: float
    swy: npt.NDArray[np.float64]  # [T]
    swxy: npt.NDArray[np.float64]  # [T]
    ok: npt.NDArray[np.bool_]  # [T] bool: all norms of the step finite


def _step_moments(raw: RawNoise) -> _Moments:
    w, x = raw.weights, raw.x_micro
    xb = raw.x_global
    with np.errstate(invalid="ignore"):
        swy = raw.s_micro @ w + raw.s_global
        swxy = raw.s_micro @ (w * x) + xb * raw.s_global
    ok = np.isfinite(raw.s_micro).all(axis=1) & np.isfinite(raw.s_global)
    return _Moments(
        sw=float(w.sum() + 1.0),
        swx=float(w @ x + xb),
        swxx=float(w @ (x * x) + xb * xb),
        swy=np.where(ok, swy, 0.0),
        swxy=np.where(ok, swxy, 0.0),
        ok=ok,
    )


def _solve(
    m: _Moments, counts: npt.NDArray[Any], swy: npt.NDArray[np.float64], swxy: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Intercept |G|^2 and slope tr(Sigma) for step multiplicities `counts`.

    counts is [..., steps]; the sums are linear in it, which is what makes
    the bootstrap one matrix product instead of a loop of fits.
    """
    n = counts.sum(axis=-1).astype(np.float64)
    sw, sx, sxx = n * m.sw, n * m.swx, n * m.swxx
    sy, sxy = counts @ swy, counts @ swxy
    det = sw * sxx - sx * sx
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(det > 0, (sw * sxy - sx * sy) / det, np.nan)
        intercept = np.where(det > 0, (sy - slope * sx) / sw, np.nan)
    return intercept, slope


def _ratio(trsigma: npt.NDArray[np.float64], g2: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(g2 > 0, trsigma / g2, np.nan)


def _fit_window(
    index: int, start: int, stop: int, raw: RawNoise,
    steps: npt.NDArray[np.float64], loss: npt.NDArray[np.float64], m: _Moments,
    n_boot: int, ci: tuple[float, float], seed: int,
) -> dict[str, float]:
    nan = float("nan")
    keep = np.flatnonzero(m.ok[start:stop]) + start
    step_mid = 0.5 * (steps[start] + steps[stop - 1])
    finite_loss = loss[start:stop][np.isfinite(loss[start:stop])]
    row: dict[str, float] = {
        "window": index,
        "step_first": steps[start],
        "step_last": steps[stop - 1],
        "step_mid": step_mid,
        "samples_mid": step_mid * raw.global_batch,
        "train_loss_mid": float(finite_loss.mean()) if finite_loss.size else nan,
        "steps_used": int(keep.size),
    }
    for name in ("g2", "trsigma", "b_noise"):
        row[name] = row[f"{name}_lo"] = row[f"{name}_hi"] = nan
    if keep.size == 0 or not raw.separable:
        return row
    swy, swxy = m.swy[keep], m.swxy[keep]
    g2, trsigma = _solve(m, np.ones(keep.size), swy, swxy)
    row["g2"], row["trsigma"] = float(g2), float(trsigma)
    row["b_noise"] = float(_ratio(np.asarray(trsigma), np.asarray(g2)))
    if keep.size < 2 or n_boot < 1:
        return row
    rng = np.random.default_rng([seed, index])
    counts = rng.multinomial(keep.size, np.full(keep.size, 1.0 / keep.size), size=n_boot)
    boot_g2, boot_tr = _solve(m, counts, swy, swxy)
    lo, hi = ci
    row["g2_lo"], row["g2_hi"] = (float(v) for v in np.nanpercentile(boot_g2, [lo, hi]))
    row["trsigma_lo"], row["trsigma_hi"] = (float(v) for v in np.nanpercentile(boot_tr, [lo, hi]))
    boot_b = _ratio(boot_tr, boot_g2)
    if np.isfinite(boot_b).mean() >= _MIN_VALID_RESAMPLES:
        row["b_noise_lo"], row["b_noise_hi"] = (float(v) for v in np.nanpercentile(boot_b, [lo, hi]))
    return row


def default_window(run: Run) -> int:
    """About 20 windows per run, at least 5 steps each: enough points for a
    curve, enough steps per point for a stable fit."""
    return max(5, math.ceil(len(run.train) / 20))


# Runs whose second half of training is the second half of a real run.
# Diverged and failed runs are left out (their late norms describe the
# blow-up), and running ones too while any run has finished: the "second
# half" of a run 10 % done is early training, where the noise scale is small.
_NOISE_SUMMARY_FINISHED: tuple[str, ...] = ("completed", "preempted")
_NOISE_SUMMARY_SKIP: tuple[str, ...] = ("diverged", "failed")


# The noise EMA's window in training samples when a file does not name one
# (written before gns.ema_samples, or with gns.ema_beta): gns.ema_samples' default.
DEFAULT_EMA_SAMPLES: float = 10000.0
# A run shorter than this many windows (in samples) gets a warning: the
# second half of its re-smoothed B_simple still averages its first half.
_MIN_WINDOWS_PER_RUN: float = 2.0


def ema_samples_of(run: Run) -> float:
    """The run's noise window in samples: its `ema_samples` attribute, or
    DEFAULT_EMA_SAMPLES where that is absent or NaN (older files, gns.ema_beta)."""
    value = run.attrs.get("ema_samples")
    try:
        window = float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        window = math.nan
    return window if math.isfinite(window) and window > 0 else DEFAULT_EMA_SAMPLES


def study_window(runs: Iterable[Run]) -> float:
    """One window in samples for a whole study: the largest any run names
    (DEFAULT_EMA_SAMPLES when none does), so every run averages as much data."""
    return max((ema_samples_of(r) for r in runs), default=DEFAULT_EMA_SAMPLES)


def sample_beta(global_batch: int, window_samples: float) -> float:
    """The EMA factor per step of `global_batch` samples: exp(-B / window)."""
    if not (math.isfinite(window_samples) and window_samples > 0):
        raise ValueError(f"the window must be a number of samples > 0, got {window_samples}")
    return math.exp(-float(global_batch) / float(window_samples))


def resmooth_samples(run: Run, window_samples: float) -> pd.DataFrame:
    """`resmooth` with a window in samples instead of a factor per step."""
    return resmooth(run, beta=sample_beta(raw_noise(run).global_batch, window_samples))


def run_b_simple(run: Run, window_samples: float) -> float:
    """The run's B_simple: its b_simple re-smoothed over `window_samples`,
    median over the rows past half its samples (NaN when none is finite)."""
    return run_b_simple_stats(run, window_samples)[1]


def run_b_simple_stats(run: Run, window_samples: float) -> tuple[float, float]:
    """(last finite, median past half the samples) of the run's b_simple
    re-smoothed over `window_samples`; NaN where none is finite."""
    smooth = resmooth_samples(run, window_samples)
    values = smooth["b_simple"].to_numpy(dtype=float)
    samples = smooth["samples"].to_numpy(dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        return math.nan, math.nan
    late = finite & (samples > samples[-1] / 2.0)
    return float(values[finite][-1]), float(np.median(values[late])) if late.any() else math.nan


def _summary_runs(runs: Iterable[Run]) -> list[Run]:
    """Finished runs when any has finished, else the running ones; never
    diverged or failed runs."""
    kept = [r for r in runs if r.status.name not in _NOISE_SUMMARY_SKIP]
    if any(r.status.name in _NOISE_SUMMARY_FINISHED for r in kept):
        kept = [r for r in kept if r.status.name in _NOISE_SUMMARY_FINISHED]
    return kept


def _short_run_warning(run: Run, window: float) -> Optional[str]:
    samples = int(run.train["samples"].iloc[-1]) if len(run.train) else 0
    if samples >= _MIN_WINDOWS_PER_RUN * window:
        return None
    return (
        f"run {run.name} (B={run.global_batch}) saw {samples} samples, fewer than twice the noise window of "
        f"{window:g} samples: its B_simple still averages early training; set a smaller gns.ema_samples "
        "or train longer"
    )


@dataclass(frozen=True)
class NoiseSummary:
    """The study's B_simple: per run, per global batch and the headline."""

    window: float  # samples
    per_run: pd.DataFrame  # run, global_batch, b_simple
    per_batch: pd.DataFrame  # global_batch, b_simple_median (NaN: no value), runs (with a value)
    overall: float  # median over the batches with a value; NaN when none
    warnings: list[str]
    short_runs: list[str]  # runs that saw fewer than twice the window's samples


def noise_summary(runs: Iterable[Run], window_samples: Optional[float] = None) -> NoiseSummary:
    """Every run re-smoothed from its raw norms with one window in samples
    (default: study_window), so the numbers are comparable across batch sizes.

    Per run: run_b_simple. Per batch: the median over its runs (finished
    runs when any has finished; diverged and failed runs never). Headline:
    the median over the batches, each counting once however many seeds it
    has. Warnings: runs shorter than twice the window, and a study where no
    run can separate the noise.
    """
    runs = _summary_runs(runs)
    window = study_window(runs) if window_samples is None else float(window_samples)
    rows = [{"run": r.name, "global_batch": r.global_batch, "b_simple": run_b_simple(r, window)} for r in runs]
    per_run = pd.DataFrame(rows, columns=["run", "global_batch", "b_simple"])
    short = [(r.name, w) for r, w in ((r, _short_run_warning(r, window)) for r in runs) if w]
    warnings = [w for _name, w in short]
    if runs and not per_run["b_simple"].notna().any():
        warnings.append(
            "B_simple not measured: no run has more than one small batch (one rank and gns.microbatches = 1)"
        )
    per_batch = per_run.groupby("global_batch").agg(
        b_simple_median=("b_simple", "median"), runs=("b_simple", "count")
    ).reset_index()
    values = per_batch["b_simple_median"].dropna()
    overall = float(values.median()) if len(values) else math.nan
    return NoiseSummary(window, per_run, per_batch, overall, warnings, [name for name, _w in short])


def b_simple_summary(runs: Iterable[Run]) -> tuple[pd.DataFrame, float]:
    """Measured B_simple per global batch and overall, as noise_summary.

    Columns global_batch, b_simple_median, runs: only batches with a value
    (empty when no run can separate the noise); overall NaN when none.
    """
    summary = noise_summary(runs)
    per_batch = summary.per_batch[summary.per_batch["b_simple_median"].notna()].reset_index(drop=True)
    return per_batch[["global_batch", "b_simple_median", "runs"]], summary.overall


def noise_answers(runs: Iterable[Run]) -> dict[str, Any]:
    """answers.json's noise keys (docs/answers.md).

    {"b_simple_per_batch": {global_batch (int): B_simple in samples (float) or
    None where none of the batch's runs has a value}, "b_simple": the
    headline (float) or None, "warnings": [sentences]}, all as noise_summary.
    """
    summary = noise_summary(runs)
    per_batch: dict[int, Optional[float]] = {
        int(row.global_batch): _finite_or_none(row.b_simple_median) for row in summary.per_batch.itertuples()
    }
    interval = headline_interval(summary)
    warnings = list(summary.warnings)
    if interval.reason and math.isfinite(summary.overall):
        warnings.append(f"B_simple has no interval: {interval.reason}")
    return {
        "b_simple_per_batch": per_batch,
        "b_simple": _finite_or_none(summary.overall),
        "b_simple_interval": interval.as_dict(),
        "warnings": warnings,
    }


def headline_interval(summary: NoiseSummary) -> Interval:
    """The headline's 90 % interval: the runs of each batch (its seeds and lrs)
    resampled, the headline recomputed (intervals.bootstrap_groups)."""
    groups: dict[int, list[float]] = {}
    for row in summary.per_run.itertuples():
        if math.isfinite(float(row.b_simple)):
            groups.setdefault(int(row.global_batch), []).append(float(row.b_simple))

    def headline(g: Mapping[int, Sequence[float]]) -> float:
        medians = [float(np.median(v)) for v in g.values() if len(v)]
        return float(np.median(medians)) if medians else math.nan

    if not groups:
        return no_interval(summary.overall, "no run measured B_simple")
    if all(len(v) < 2 for v in groups.values()):
        return no_interval(summary.overall, "one run per batch size, nothing to resample (run more seeds)")
    return bootstrap_groups(groups, headline)


def _finite_or_none(value: Any) -> Optional[float]:
    number = float(value)
    return number if math.isfinite(number) else None
