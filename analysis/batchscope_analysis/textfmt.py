"""Numbers as they appear in sentences, figure labels and tables of the report."""

from __future__ import annotations

import math


def fmt(value: float) -> str:
    """Whole numbers from 100 up (with thousands separators: "2,560", not
    "2.56e+03"), three significant digits below ("0.153", "20")."""
    if not math.isfinite(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def pct(fraction: float) -> str:
    """An accuracy fraction as a percentage: 0.8977 -> "89.8 %"."""
    return f"{100.0 * fraction:.1f} %"


def points(fraction: float) -> str:
    """A difference of fractions in percentage points: 0.051 -> "5.1 percentage points"."""
    value = round(100.0 * fraction, 1)
    return f"{value:.1f} percentage point{'' if abs(value) == 1.0 else 's'}"
