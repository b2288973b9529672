"""Training targets: what "reached the target" means, and when a run first did.

A target is a metric of the /eval rows and a threshold (docs/run-file.md,
`/target`): errors and losses reach it from above (<=), accuracies from below
(>=). The writer records the first evaluated step that met the run's own
target in /target/step; for runs without one (or to ask about a different
target) the same rule is applied here to the /eval rows.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional

import numpy as np
import numpy.typing as npt
import pandas as pd

if TYPE_CHECKING:  # load.py imports this module; the Run type is only needed for hints.
    from batchscope_analysis.load import Run

# metric -> (/eval column it is derived from, whether lower is better).
# The error metrics are 1 - accuracy; the writer compares the same quantity.
METRICS: dict[str, tuple[str, bool]] = {
    "val_error": ("val_acc", True),
    "val_acc": ("val_acc", False),
    "val_loss": ("val_loss", True),
    "train_error": ("train_acc", True),
    "train_acc": ("train_acc", False),
    "train_loss": ("train_loss", True),
}
NO_TARGET: str = "none"
# Relative slack when comparing a stored target with a requested one: the
# value went through YAML, a double attribute and back, so equal means close.
_SAME_VALUE_RTOL: float = 1e-9


@dataclass(frozen=True)
class Target:
    """`metric <= value` (errors, losses) or `metric >= value` (accuracies)."""

    metric: str
    value: float

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown target metric {self.metric!r}; expected one of {', '.join(METRICS)}")
        if not math.isfinite(self.value):
            raise ValueError(f"target value for {self.metric} must be a finite number, got {self.value}")

    @property
    def lower_is_better(self) -> bool:
        return METRICS[self.metric][1]

    def describe(self) -> str:
        return f"{self.metric} {'<=' if self.lower_is_better else '>='} {self.value:g}"

    def metric_values(self, evals: pd.DataFrame) -> npt.NDArray[np.float64]:
        """The target metric at each /eval row (errors derived from accuracies)."""
        column: npt.NDArray[np.float64] = evals[METRICS[self.metric][0]].to_numpy(dtype=float)
        return 1.0 - column if self.metric.endswith("_error") else column

    def reached(self, values: npt.ArrayLike, slack: float = 0.0) -> npt.NDArray[np.bool_]:
        """Which values meet the target; NaN never does. `slack` loosens the
        comparison (positive) or tightens it (negative), for tolerance checks."""
        values = np.asarray(values, dtype=float)
        with np.errstate(invalid="ignore"):
            hit = values <= self.value + slack if self.lower_is_better else values >= self.value - slack
        finite: npt.NDArray[np.bool_] = np.isfinite(values)  # ufuncs are typed as returning Any
        return hit & finite

    def same_as(self, other: Optional["Target"]) -> bool:
        return (
            other is not None
            and other.metric == self.metric
            and math.isclose(other.value, self.value, rel_tol=_SAME_VALUE_RTOL, abs_tol=1e-15)
        )


def parse_target(text: str) -> Target:
    """`val_error=0.15` -> Target("val_error", 0.15); ValueError naming the problem."""
    metric, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"target {text!r} should look like METRIC=VALUE, e.g. val_error=0.15")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"target value {value!r} in {text!r} is not a number") from None
    return Target(metric.strip(), number)


def stored_target(attrs: Mapping[str, Any]) -> Optional[Target]:
    """The run's own target from its root attributes; None when it has none.

    A metric this package does not know is treated as no target rather than
    an error: `check` reports it, and the rest of the file is still usable.
    """
    metric = str(attrs.get("target_metric", NO_TARGET))
    value = attrs.get("target_value", float("nan"))
    if metric == NO_TARGET or metric not in METRICS:
        return None
    try:
        return Target(metric, float(value))
    except (TypeError, ValueError):
        return None


def first_reaching_row(evals: pd.DataFrame, target: Target) -> Optional[int]:
    """Index of the first /eval row that meets the target, or None."""
    if not len(evals):
        return None
    hits = np.flatnonzero(target.reached(target.metric_values(evals)))
    return int(hits[0]) if hits.size else None


@dataclass(frozen=True)
class TargetHit:
    """When a run first met a target. step/samples are NaN when it did not.

    `source` says where the answer came from: "/target" (the writer's record),
    "/eval" (computed from the evaluation rows), or "no target".
    """

    step: float
    samples: float
    source: str

    @property
    def reached(self) -> bool:
        return math.isfinite(self.step)


def steps_to_target(run: "Run", target: Optional[Target] = None) -> TargetHit:
    """Steps and samples until `run` first met `target` (default: its own).

    /target/step is used when it answers the same question (the run's stored
    target is the one asked about) and is >= 0; otherwise the first /eval row
    meeting the target is searched, so studies written without a target, or
    a different target than the stored one, can still be analysed.
    """
    nan = float("nan")
    own = stored_target(run.attrs)
    target = target if target is not None else own
    if target is None:
        return TargetHit(nan, nan, "no target")
    if target.same_as(own) and run.target.step >= 0:
        return TargetHit(float(run.target.step), float(run.target.samples), "/target")
    row = first_reaching_row(run.eval, target)
    if row is None:
        return TargetHit(nan, nan, "/eval")
    return TargetHit(float(run.eval["step"].iloc[row]), float(run.eval["samples"].iloc[row]), "/eval")


def study_target(runs: Iterable["Run"], override: Optional[Target] = None) -> tuple[Optional[Target], str]:
    """The one target a study is judged by, and a note saying where it came from.

    An explicit target wins. Otherwise the runs' stored targets are used when
    they all agree (runs without a stored target are then measured against it
    from their /eval rows: a study that set the target on some runs only is
    still comparable). Disagreeing stored targets give no target, with a note
    asking for one, since steps-to-target for different targets cannot share
    one S(B) fit. An accuracy or error target for a study of mse runs (which
    have no accuracy) gives no target either, with a note naming the loss
    targets that work.
    """
    runs = list(runs)
    if override is not None:
        unusable = _needs_accuracy(runs, override)
        if unusable:
            return None, unusable
        return override, f"{override.describe()} (given on the command line)"
    declared = [t for t in (stored_target(r.attrs) for r in runs) if t is not None]
    if not declared:
        return None, "no run file declares a target and none was given (use --target METRIC=VALUE)"
    counts = Counter((t.metric, t.value) for t in declared)
    if len(counts) > 1:
        listed = "; ".join(
            f"{Target(m, v).describe()} in {c} run{'s' if c != 1 else ''}" for (m, v), c in counts.items()
        )
        return None, f"run files declare different targets ({listed}); choose one with --target METRIC=VALUE"
    target = declared[0]
    unusable = _needs_accuracy(runs, target)
    if unusable:
        return None, unusable
    return target, f"{target.describe()} (declared in {len(declared)} of {len(runs)} run files)"


def is_accuracy_metric(metric: str) -> bool:
    """val_acc, val_error, train_acc, train_error: derived from an accuracy column."""
    return METRICS[metric][0].endswith("_acc")


def _needs_accuracy(runs: list["Run"], target: Target) -> str:
    """Why `target` cannot be measured on `runs` (every run an mse run, none with accuracy), or ""."""
    if not is_accuracy_metric(target.metric) or not runs or any(run.has_accuracy for run in runs):
        return ""
    return (
        f"target {target.describe()} needs accuracy, which mse runs do not have (model.loss: mse); "
        "use a loss target, e.g. --target val_loss=VALUE or train_loss=VALUE"
    )


def previous_eval_step(run: "Run", step: float) -> float:
    """The last evaluated step before `step` (NaN when `step` is NaN).

    Evaluations only look every so many steps, so a run first met its target
    somewhere in (previous_eval_step, step]: that is how well one seed's
    steps-to-target is known. A hit at the first evaluation has no earlier
    one; `step` itself is returned (no spread to give).
    """
    if not math.isfinite(step):
        return math.nan
    steps = run.eval["step"].to_numpy(dtype=float) if len(run.eval) else np.zeros(0)
    earlier = steps[steps < step]
    return float(earlier.max()) if earlier.size else float(step)


def eval_interval(run: "Run") -> float:
    """Median steps between the run's evaluations (NaN with fewer than two)."""
    steps = np.unique(run.eval["step"].to_numpy(dtype=float)) if len(run.eval) else np.zeros(0)
    if steps.size < 2:
        return math.nan
    # The last evaluation (after the final step) may sit off the grid; the
    # median ignores it.
    return float(np.median(np.diff(steps)))
