"""answers.json: the study's answers as data, beside report.html.

The report's sentences, as numbers a script or a notebook can read: the
noise scale per batch and its headline, the critical batch size, the best
batch at fair tuning with its margin, the best learning rate per batch, the
generalization-gap trend, whether larger batches ended sharper, how robust each batch is to its learning rate,
time to target on this hardware, and every warning. Each value with an
interval carries `low` and `high` (90 %, bootstrap; intervals.py) or null
where there is none. docs/answers.md documents every key; ANSWER_KEYS is the
one list both the writer and its test follow.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import numpy as np

from batchscope_analysis.load import PathLike, Run
from batchscope_analysis.noise import noise_answers
from batchscope_analysis.scaling import scaling_answers
from batchscope_analysis.score import study_score
from batchscope_analysis.sharpness import sharpness_answers
from batchscope_analysis.target import Target, study_target
from batchscope_analysis.tuning import tuning_answers

ANSWERS_FILE: str = "answers.json"
SCHEMA: str = "batchscope-answers"
SCHEMA_VERSION: int = 1

# key: what it holds (docs/answers.md has the same rows, checked by a test).
ANSWER_KEYS: dict[str, str] = {
    "schema": f'"{SCHEMA}"',
    "schema_version": f"{SCHEMA_VERSION}",
    "studies": "study names of the runs read",
    "runs": "number of run files read",
    "target": "the target used for steps and time to target (e.g. 'val_error <= 0.15'), or null",
    "target_note": "where the target came from, or why there is none",
    "b_simple_per_batch": "{batch: B_simple in samples}, from raw statistics smoothed over a window in samples",
    "b_simple": "headline B_simple (samples), consistent across batch sizes",
    "b_simple_interval": "{value, low, high}: the headline with its interval, each batch's runs resampled",
    "b_crit": "{value, low, high}: critical batch E_min/S_min from steps to target, or null (see b_crit_reason)",
    "b_crit_reason": "why b_crit is null ('' when it has a value)",
    "s_min": "{value, low, high}: fewest steps to the target (S_min of S(B) = S_min + E_min/B)",
    "e_min": "{value, low, high}: fewest samples to the target (E_min)",
    "best_batch": "{batch, lr, metric, value, margin, low, high}: best batch at equal epochs, each batch at its "
    "best lr, completed runs only; margin over the runner-up and its interval",
    "best_lr_per_batch": "{batch: {lr, at_grid_edge}}: each batch's best learning rate and whether it sits at an "
    "edge of the grid tried",
    "gap_trend": "{per_doubling, low, high}: change of the generalization gap per doubling of the batch",
    "sharpness_trend": "{slope, low, high, level, verdict, n_runs, n_batches, median_per_batch, gap_correlation, "
    "...}: final sharpness against batch size and its correlation with the gap, or null (see "
    "sharpness_trend_reason)",
    "sharpness_trend_reason": "why sharpness_trend is null ('' when it has a value)",
    "lr_robustness_per_batch": "{batch: {lr_low, lr_high, lrs_within, lrs_tried}}: the learning rates within 1 "
    "point of the batch's best",
    "diverged": "names of the runs that diverged (never counted as a batch's result)",
    "time_to_target_per_batch": "{batch: {wall_s, steps, samples, lr, seeds, comparable}}",
    "fastest_batch": "{batch, wall_s, low, high}: the batch that reached the target first in wall time, or null",
    "warnings": "every caveat the analysis raised, as sentences",
}


def compute_answers(runs: Iterable[Run], target: Optional[Target] = None) -> dict[str, Any]:
    """Every answer of the study, JSON-ready; `target` overrides the runs' stored one."""
    runs = list(runs)
    resolved, note = study_target(runs, target)
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "studies": sorted({r.attrs.get("study", "") for r in runs if r.attrs.get("study", "")}),
        "runs": len(runs),
        "target": resolved.describe() if resolved is not None else None,
        "target_note": note,
    }
    warnings: list[str] = []
    parts = (noise_answers(runs), scaling_answers(runs, resolved), tuning_answers(runs, study_score(runs)),
             sharpness_answers(runs))
    for part in parts:
        for key, value in part.items():
            if key == "warnings":
                warnings += [w for w in value if w not in warnings]
            elif key in ANSWER_KEYS:
                out[key] = value
    out["warnings"] = warnings
    missing = [k for k in ANSWER_KEYS if k not in out]
    for key in missing:
        out[key] = None
    return {k: _plain(out[k]) for k in ANSWER_KEYS}


def write_answers(runs: Iterable[Run], out: PathLike, target: Optional[Target] = None) -> Path:
    """Writes answers.json to `out`; returns its path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(compute_answers(runs, target), indent=2, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _plain(value: Any) -> Any:
    """JSON values only: str keys, None for NaN/inf, Python numbers for NumPy's."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    return value
