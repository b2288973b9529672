"""Figures of a study, written as PNG files.

Figures are drawn on matplotlib's Agg canvas directly, without pyplot, so no
display is needed and no global pyplot state leaks between calls.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Union

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogFormatter, NullLocator

from batchscope_analysis.load import Run, runs_table

PathLike = Union[str, Path]

LOSS_FIGURE: str = "loss_vs_samples.png"
FINAL_FIGURE: str = "final_vs_batch.png"
_LINESTYLES: tuple[str, ...] = ("-", "--", ":", "-.")
_DPI: int = 120


def plot_loss_vs_samples(runs: Iterable[Run], out: PathLike) -> list[Path]:
    """Training loss (EMA-smoothed) and validation loss vs samples seen.

    Colour encodes the global batch and line style the base lr; seeds of one
    (batch, lr) share both, so the legend has one entry per configuration.
    """
    runs = list(runs)
    fig = _new_figure((13.0, 5.0))
    ax_train, ax_val = fig.subplots(1, 2, sharey=True)
    colours = _batch_colours(runs)
    styles = _lr_styles(runs)
    handles: dict[tuple[int, float], object] = {}
    for run in runs:
        key = (int(run.attrs["global_batch"]), float(run.attrs["base_lr"]))
        style = {"color": colours[key[0]], "linestyle": styles[key[1]]}
        train = run.train
        if len(train):
            x = train["samples"].to_numpy(dtype=float)
            (line,) = ax_train.plot(x, _smooth(train["loss"].to_numpy(dtype=float)), lw=1.2, **style)
            handles.setdefault(key, line)
        evals = run.eval[run.eval["samples"] > 0]  # step 0 has no place on a log axis
        if len(evals):
            ax_val.plot(
                evals["samples"].to_numpy(dtype=float),
                _finite(evals["val_loss"].to_numpy(dtype=float)),
                marker="o",
                markersize=3.5,
                lw=0.8,
                **style,
            )
    for ax, title in ((ax_train, "Training loss (EMA-smoothed, per step)"), (ax_val, "Validation loss (per eval)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("samples seen")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    # Loss spans about a decade: plain numbers (0.4, 0.6, 1, 2) read better than 4x10^-1.
    ax_train.yaxis.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
    ax_train.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax_train.set_ylabel("mean loss per sample")
    if handles:
        keys = sorted(handles)
        # Loss falls with samples, so the upper right of the panel is free.
        ax_train.legend(
            [handles[k] for k in keys],
            [f"B={b}, lr={lr:g}" for b, lr in keys],
            loc="upper right",
            title="global batch (samples), base lr",
            fontsize="small",
        )
    fig.suptitle(f"Loss vs samples seen: {_study_names(runs)}")
    return [_save(fig, Path(out) / LOSS_FIGURE)]


def final_by_batch(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, min and max over seeds of final val accuracy and gap per (lr, batch).

    Runs still in progress are left out: their "final" values are not final
    and would pull the seed mean towards early-training numbers.
    """
    done = table[table["status"] != "running"]
    grouped = done.groupby(["base_lr", "global_batch"])
    stats = grouped.agg(
        val_acc_mean=("final_val_acc", "mean"),
        val_acc_min=("final_val_acc", "min"),
        val_acc_max=("final_val_acc", "max"),
        gap_mean=("gap", "mean"),
        gap_min=("gap", "min"),
        gap_max=("gap", "max"),
        seeds=("seed", "nunique"),
    )
    return stats.reset_index()


def plot_final_vs_batch(runs: Iterable[Run], out: PathLike) -> list[Path]:
    """Final validation accuracy and generalization gap vs global batch, per base lr."""
    runs = list(runs)
    stats = final_by_batch(runs_table(runs))
    fig = _new_figure((12.0, 4.8))
    ax_acc, ax_gap = fig.subplots(1, 2)
    for i, (lr, group) in enumerate(stats.groupby("base_lr")):
        group = group.sort_values("global_batch")
        seeds = int(group["seeds"].max())
        label = f"base lr {lr:g} ({seeds} seed{'s' if seeds != 1 else ''})"
        for ax, column in ((ax_acc, "val_acc"), (ax_gap, "gap")):
            mean = group[f"{column}_mean"].to_numpy(dtype=float)
            spread = np.vstack([mean - group[f"{column}_min"], group[f"{column}_max"] - mean])
            # Rounding can put the mean a hair outside min..max; matplotlib rejects negative bars.
            spread = np.clip(spread, 0.0, None)
            ax.errorbar(
                group["global_batch"].to_numpy(dtype=float),
                mean,
                yerr=spread,
                marker="o",
                capsize=3,
                linestyle=_LINESTYLES[i % len(_LINESTYLES)],
                label=label,
            )
    batches = sorted(stats["global_batch"].unique().tolist())
    for ax in (ax_acc, ax_gap):
        ax.set_xscale("log", base=2)
        if batches:
            ax.xaxis.set_major_locator(FixedLocator(batches))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("global batch (samples)")
        ax.grid(True, alpha=0.3)
    ax_acc.set_ylabel("final validation accuracy (fraction)")
    ax_acc.set_title("Final validation accuracy")
    ax_gap.set_ylabel("train acc - val acc (fraction)")
    ax_gap.set_title("Generalization gap")
    if len(stats):
        ax_acc.legend(fontsize="small", title="mean over seeds, bars = min..max")
    else:
        ax_acc.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax_acc.transAxes)
    fig.suptitle(f"Final results vs global batch: {_study_names(runs)}")
    return [_save(fig, Path(out) / FINAL_FIGURE)]


class _PlainLogFormatter(LogFormatter):
    """LogFormatter's choice of which ticks to label, with plain numbers.

    LogFormatter switches to "6e-01" below 1; overriding its (stable since
    matplotlib 2.0) number hook keeps "0.6".
    """

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:g}"


def _new_figure(size: tuple[float, float]) -> Figure:
    # Constrained layout keeps the suptitle and axis labels from overlapping.
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI)
    return path


def _finite(values: np.ndarray) -> np.ndarray:
    # inf would wreck autoscaling; NaN just leaves a gap in the line.
    return np.where(np.isfinite(values), values, np.nan)


def _smooth(loss: np.ndarray) -> np.ndarray:
    """Light EMA over ~2% of the run; non-finite steps stay gaps.

    Without the mask a diverged run would look flat after its first NaN,
    because the EMA skips missing values.
    """
    loss = _finite(loss)
    span = max(1, len(loss) // 50)
    smoothed = pd.Series(loss).ewm(span=span, ignore_na=True).mean().to_numpy()
    return np.where(np.isnan(loss), np.nan, smoothed)


def _batch_colours(runs: list[Run]) -> dict[int, tuple[float, float, float, float]]:
    batches = sorted({int(r.attrs["global_batch"]) for r in runs})
    cmap = colormaps["viridis"]
    if len(batches) == 1:
        return {batches[0]: cmap(0.0)}
    logs = [math.log2(b) for b in batches]
    lo, hi = min(logs), max(logs)
    # Stop at 0.9: the top of viridis is too pale to read on white.
    return {b: cmap(0.9 * (lg - lo) / (hi - lo)) for b, lg in zip(batches, logs)}


def _lr_styles(runs: list[Run]) -> dict[float, str]:
    lrs = sorted({float(r.attrs["base_lr"]) for r in runs})
    return {lr: _LINESTYLES[i % len(_LINESTYLES)] for i, lr in enumerate(lrs)}


def _study_names(runs: list[Run]) -> str:
    names = sorted({str(r.attrs.get("study", "")) for r in runs} - {""})
    return ", ".join(names) if names else "(no study name)"
