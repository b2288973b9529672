"""Bootstrap intervals: one way to put uncertainty on every headline number.

A statistic of a study (the best batch's margin, B_crit, the gap trend) is
recomputed on resampled copies of the study; the interval is the central
`level` range of those recomputations (percentile bootstrap). What is
resampled is the unit of independent evidence:

- seeds, when a batch (or batch and lr) has several: each group's seeds are
  drawn with replacement, independently per group (`resample_groups`);
- evaluation points, when there is one seed: a run's evaluations are drawn
  with replacement (the caller does this; the same `bootstrap` runs it).

Intervals are 90 % by default (LEVEL) and deterministic: the generator is
seeded (SEED), so a report is reproducible.

Few seeds: the plain percentile bootstrap runs narrow when each group has n
units (it ignores the t distribution and shrinks the variance by (n-1)/n; on
synthetic studies with 3 seeds, 90 % intervals covered the truth 64-84 % of
the time). Given n, an interval is widened about its point estimate by
small_sample_factor(n) = t(n-1) / z * sqrt(n / (n-1)), the ratio of the
Student-t interval of a mean of n to the normal one the bootstrap mimics
(2.17 at n = 3, 1.23 at n = 8, 1.08 at n = 20); a quantity whose every draw
is positive (a time, a batch size) is widened on a log scale instead, so its
interval stays positive. With fewer than two distinct
values to resample, there is no interval: `Interval.low`/`high` are NaN and
`reason` says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Hashable, Mapping, Optional, Sequence, TypeVar

import numpy as np
from scipy import stats

LEVEL: float = 0.9
DRAWS: int = 2000
SEED: int = 20261126

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its `level` bootstrap interval (NaN when none)."""

    value: float
    low: float
    high: float
    level: float = LEVEL
    reason: str = ""

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def as_dict(self) -> dict[str, Optional[float]]:
        """{value, low, high} with None for what is missing (JSON-friendly)."""

        def num(x: float) -> Optional[float]:
            return float(x) if math.isfinite(x) else None

        return {"value": num(self.value), "low": num(self.low), "high": num(self.high)}


def no_interval(value: float, reason: str) -> Interval:
    return Interval(value, math.nan, math.nan, LEVEL, reason)


def small_sample_factor(n: int, level: float = LEVEL) -> float:
    """How much wider a Student-t interval of a mean of n is than the bootstrap's (1 for n < 2)."""
    if n < 2:
        return 1.0
    q = 0.5 + level / 2.0
    return float(stats.t.ppf(q, n - 1) / stats.norm.ppf(q) * math.sqrt(n / (n - 1)))


def percentile_interval(draws: Sequence[float], value: float, level: float = LEVEL,
                        units: Optional[int] = None) -> Interval:
    """The central `level` range of the finite draws around `value`, widened for
    `units` resampled units per group (module docstring) when given."""
    x = np.asarray([d for d in draws if d is not None and math.isfinite(d)], dtype=float)
    if x.size < 10:
        return no_interval(value, f"only {x.size} of {len(draws)} resampled estimates were finite")
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = (float(v) for v in np.percentile(x, [tail, 100.0 - tail]))
    if units is not None and math.isfinite(value):
        c = small_sample_factor(units, level)
        if value > 0 and bool(np.all(x > 0)):
            # A positive quantity (a time, a batch size) widens on a log scale, so it stays positive.
            low, high = value * (min(low, value) / value) ** c, value * (max(high, value) / value) ** c
        else:
            low, high = value - c * max(value - low, 0.0), value + c * max(high - value, 0.0)
    return Interval(value, low, high, level)


def bootstrap(
    data: Sequence[T],
    statistic: Callable[[Sequence[T]], float],
    *,
    level: float = LEVEL,
    draws: int = DRAWS,
    seed: int = SEED,
) -> Interval:
    """Percentile interval of statistic(data) over resamples of `data` with replacement."""
    value = statistic(data)
    if len(data) < 2:
        return no_interval(value, f"{len(data)} value(s) to resample")
    rng = np.random.default_rng(seed)
    n = len(data)
    out = [statistic([data[i] for i in rng.integers(0, n, n)]) for _ in range(draws)]
    return percentile_interval(out, value, level, units=n)


def smallest_group(groups: Mapping[K, Sequence[T]]) -> int:
    """Units in the smallest group that has at least two (what the widening is sized by)."""
    sizes = [len(v) for v in groups.values() if len(v) >= 2]
    return min(sizes) if sizes else 1


def resample_groups(groups: Mapping[K, Sequence[T]], rng: np.random.Generator) -> dict[K, list[T]]:
    """Each group's members drawn with replacement, independently per group."""
    return {k: [v[i] for i in rng.integers(0, len(v), len(v))] for k, v in groups.items() if len(v)}


def bootstrap_groups(
    groups: Mapping[K, Sequence[T]],
    statistic: Callable[[Mapping[K, Sequence[T]]], float],
    *,
    level: float = LEVEL,
    draws: int = DRAWS,
    seed: int = SEED,
) -> Interval:
    """Percentile interval of statistic(groups) over per-group resamples.

    No interval when no group has two members (one seed everywhere): then the
    caller resamples evaluation points instead, or reports the value alone."""
    value = statistic(groups)
    if not any(len(v) >= 2 for v in groups.values()):
        return no_interval(value, "one seed per group: nothing to resample across seeds")
    rng = np.random.default_rng(seed)
    out = [statistic(resample_groups(groups, rng)) for _ in range(draws)]
    return percentile_interval(out, value, level, units=smallest_group(groups))


def round_to_interval(x: float, width: float) -> float:
    """x rounded to the figures the interval's width supports (two of the width)."""
    if not math.isfinite(x) or not math.isfinite(width) or width <= 0:
        return x
    step = 10.0 ** (math.floor(math.log10(width)) - 1)
    return round(x / step) * step
