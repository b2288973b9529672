"""Figures of a study, written as PNG files.

Figures are drawn on matplotlib's Agg canvas directly, without pyplot, so no
display is needed and no global pyplot state leaks between calls. Every
function returns the paths it wrote; where there is nothing to draw it
writes a PNG saying "no data: <reason>" instead of failing, so a report
always has all its figures.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, LogFormatter, NullLocator

from batchscope_analysis.generalization import final_by_batch
from batchscope_analysis.load import Run, runs_table
from batchscope_analysis.noise import (
    CI_PERCENTILES, N_BOOT, b_simple_summary, default_window, fit_noise, resmooth_samples, study_window,
)
from batchscope_analysis.scaling import fit_study
from batchscope_analysis.score import study_score
from batchscope_analysis.target import Target, study_target
from batchscope_analysis.textfmt import fmt

PathLike = Union[str, Path]

LOSS_FIGURE: str = "loss_vs_samples.png"
FINAL_FIGURE: str = "final_vs_batch.png"
B_SIMPLE_SAMPLES_FIGURE: str = "b_simple_vs_samples.png"
B_SIMPLE_LOSS_FIGURE: str = "b_simple_vs_loss.png"
NOISE_FIT_FIGURE: str = "noise_fit.png"
STEPS_FIGURE: str = "steps_to_target.png"
EXAMPLES_FIGURE: str = "examples_to_target.png"
# The order plot_all writes them in (and the report shows them in).
ALL_FIGURES: tuple[str, ...] = (
    LOSS_FIGURE, FINAL_FIGURE, B_SIMPLE_SAMPLES_FIGURE, B_SIMPLE_LOSS_FIGURE, NOISE_FIT_FIGURE, STEPS_FIGURE,
    EXAMPLES_FIGURE,
)
__all__ = [
    "final_by_batch",  # re-exported: it used to live here
    "plot_all", "plot_loss_vs_samples", "plot_final_vs_batch", "plot_b_simple_vs_samples", "plot_b_simple_vs_loss",
    "plot_noise_fit", "plot_steps_to_target", "plot_examples_to_target",
]
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
    _plain_log_labels(ax_train.yaxis)
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


def plot_final_vs_batch(runs: Iterable[Run], out: PathLike) -> list[Path]:
    """Final and best validation accuracy and generalization gap vs global batch, per base lr.

    Points are seed means, bars min..max over seeds. "best" is the highest
    val accuracy at any evaluation of the run, "final" the last one. A study
    of mse runs (no accuracy) shows validation loss instead: best is the
    lowest, and the gap is val_loss - train_loss.
    """
    runs = list(runs)
    score = study_score(runs)
    accuracy = score.higher_is_better
    stats = final_by_batch(runs_table(runs), score)
    path = Path(out) / FINAL_FIGURE
    what = "Accuracy" if accuracy else "Validation loss"
    title = f"{what} and generalization gap vs global batch: {_study_names(runs)}"
    if not len(stats):
        return [_no_data_figure(path, title, "no finished runs (all are still running)")]
    fig = _new_figure((15.0, 4.8))
    ax_final, ax_best, ax_gap = fig.subplots(1, 3, sharey=False)
    for i, (lr, group) in enumerate(stats.groupby("base_lr")):
        group = group.sort_values("global_batch")
        seeds = int(group["seeds"].max())
        label = f"base lr {lr:g} ({seeds} seed{'s' if seeds != 1 else ''})"
        for ax, column in ((ax_final, score.column), (ax_best, f"best_{score.column}"), (ax_gap, "gap")):
            mean = group[f"{column}_mean"].to_numpy(dtype=float)
            spread = np.vstack([mean - group[f"{column}_min"], group[f"{column}_max"] - mean])
            # Rounding can put the mean a hair outside min..max; matplotlib rejects negative bars.
            spread = np.clip(np.nan_to_num(spread), 0.0, None)
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
    for ax in (ax_final, ax_best, ax_gap):
        _batch_axis(ax, batches)
        ax.grid(True, alpha=0.3)
    # Final and best share one scale so the drop from best to final reads off directly.
    lows = [ax.get_ylim()[0] for ax in (ax_final, ax_best)]
    highs = [ax.get_ylim()[1] for ax in (ax_final, ax_best)]
    for ax in (ax_final, ax_best):
        ax.set_ylim(min(lows), max(highs))
    if accuracy:
        ax_final.set_ylabel("validation accuracy (fraction)")
        ax_final.set_title("Final validation accuracy (last eval)")
        ax_best.set_title("Best validation accuracy (any eval)")
        ax_gap.set_ylabel("train acc - val acc at the last eval (fraction)")
    else:
        ax_final.set_ylabel("validation loss (mean per sample)")
        ax_final.set_title("Final validation loss (last eval)")
        ax_best.set_title("Lowest validation loss (any eval)")
        ax_gap.set_ylabel("val loss - train loss at the last eval")
    ax_gap.set_title("Generalization gap")
    ax_final.legend(fontsize="small", title="mean over seeds, bars = min..max")
    fig.suptitle(title)
    return [_save(fig, path)]


def plot_b_simple_vs_samples(runs: Iterable[Run], out: PathLike, b_crit: Optional[float] = None) -> list[Path]:
    """B_simple (re-smoothed over the study's window in samples) vs samples seen, log axes.

    A dashed line marks B_crit from the steps-to-target fit when given, for
    comparison: McCandlish et al. find B_crit ~ B_noise during training.
    """
    runs = list(runs)
    path = Path(out) / B_SIMPLE_SAMPLES_FIGURE
    title = f"Gradient noise scale B_simple vs samples seen: {_study_names(runs)}"
    window = study_window(runs)
    series = [(run, run.train["samples"].to_numpy(dtype=float), _b_simple(run, window)) for run in runs]
    if not any(_positive(y).any() for _run, _x, y in series):
        return [_no_data_figure(path, title, _NO_B_SIMPLE)]
    fig = _new_figure((10.0, 5.5))
    ax = fig.subplots()
    handles = _run_lines(ax, runs, series)
    if b_crit is not None and math.isfinite(b_crit):
        ax.axhline(b_crit, color="black", linestyle="--", lw=1.2, label=f"B_crit = {fmt(b_crit)} (S(B) fit)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("samples seen")
    ax.set_ylabel("B_simple = tr(Sigma) / |G|^2 (samples)")
    ax.grid(True, which="both", alpha=0.3)
    _plain_log_labels(ax.yaxis)
    _legend(ax, handles, extra=b_crit is not None and math.isfinite(b_crit), loc="upper left")
    ax.set_title(f"EMA over {fmt(window)} samples at every batch size, re-smoothed from the raw norms; "
                 "values <= 0 are not shown on log axes", fontsize="small")
    fig.suptitle(title)
    return [_save(fig, path)]


def _b_simple(run: Run, window: float) -> npt.NDArray[np.float64]:
    """The run's b_simple re-smoothed over `window` samples, row for row (the answers' numbers)."""
    if not len(run.gns):
        return np.zeros(0)
    values: npt.NDArray[np.float64] = resmooth_samples(run, window)["b_simple"].to_numpy(dtype=float)
    return values


def plot_b_simple_vs_loss(runs: Iterable[Run], out: PathLike) -> list[Path]:
    """B_simple vs training loss (EMA-smoothed like the loss figure), log axes.

    The loss axis runs from high to low, so training proceeds left to right,
    and runs of different batch sizes are compared at equal loss rather than
    equal samples: the noise scale depends on where in training a run is.
    """
    runs = list(runs)
    path = Path(out) / B_SIMPLE_LOSS_FIGURE
    title = f"Gradient noise scale B_simple vs training loss: {_study_names(runs)}"
    window = study_window(runs)
    series = [(run, _smooth(run.train["loss"].to_numpy(dtype=float)), _b_simple(run, window)) for run in runs]
    if not any((_positive(y) & _positive(x)).any() for _run, x, y in series):
        return [_no_data_figure(path, title, _NO_B_SIMPLE)]
    fig = _new_figure((10.0, 5.5))
    ax = fig.subplots()
    handles = _run_lines(ax, runs, series)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.invert_xaxis()
    _plain_log_labels(ax.xaxis)
    ax.set_xlabel("training loss, mean per sample (EMA-smoothed; decreasing to the right)")
    ax.set_ylabel("B_simple = tr(Sigma) / |G|^2 (samples)")
    ax.grid(True, which="both", alpha=0.3)
    _plain_log_labels(ax.yaxis)
    _legend(ax, handles, loc="upper left")
    fig.suptitle(title)
    return [_save(fig, path)]


def plot_noise_fit(runs: Iterable[Run], out: PathLike, window: Optional[int] = None) -> list[Path]:
    """|G|^2, tr(Sigma) and their ratio from the windowed least-squares fit
    (noise.fit_noise) vs samples seen, with bootstrap confidence bands.

    One seed (the lowest) per (batch, lr) keeps the panels readable; the
    window is noise.default_window(run) unless given.
    """
    runs = list(runs)
    path = Path(out) / NOISE_FIT_FIGURE
    title = f"Noise fit per window, E|g_b|^2 = |G|^2 + tr(Sigma) x(b): {_study_names(runs)}"
    chosen = [r for r in _one_seed_each(runs) if len(r.batch_micro) > 1]
    fits = [(run, fit_noise(run, window or default_window(run))) for run in chosen]
    fits = [(run, fit) for run, fit in fits if len(fit) and np.isfinite(fit["g2"]).any()]
    if not fits:
        return [_no_data_figure(path, title, _NO_B_SIMPLE)]
    fig = _new_figure((14.0, 5.4))
    axes = fig.subplots(1, 3)
    colours, styles = _batch_colours(runs), _lr_styles(runs)
    handles: dict[tuple[int, float], object] = {}
    for run, fit in fits:
        key = (run.global_batch, float(run.attrs["base_lr"]))
        style = {"color": colours[key[0]], "linestyle": styles[key[1]]}
        x = fit["samples_mid"].to_numpy(dtype=float)
        for ax, name in zip(axes, ("g2", "trsigma", "b_noise")):
            y = fit[name].to_numpy(dtype=float)
            lo, hi = fit[f"{name}_lo"].to_numpy(dtype=float), fit[f"{name}_hi"].to_numpy(dtype=float)
            shown = _positive(y)
            (line,) = ax.plot(x[shown], y[shown], marker="o", markersize=3, lw=1.2, **style)
            handles.setdefault(key, line)
            # A band reaching zero or below is clipped to the panel instead
            # of vanishing: "could be ~0" is the information it carries.
            floor = 0.5 * float(np.nanmin(y[shown])) if shown.any() else np.nan
            band = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(floor)
            ax.fill_between(x[band], np.maximum(lo[band], floor), np.maximum(hi[band], floor),
                            color=style["color"], alpha=0.18, lw=0)
    labels = (
        ("|G|^2, true-gradient squared norm", "|G|^2 (squared gradient norm, loss units^2)"),
        ("tr(Sigma), per-sample gradient variance", "tr(Sigma) (loss units^2 x samples)"),
        ("B_noise = tr(Sigma) / |G|^2", "B_noise (samples)"),
    )
    for ax, (panel, ylabel) in zip(axes, labels):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("samples seen (window middle)")
        ax.set_ylabel(ylabel)
        ax.set_title(panel, fontsize="medium")
        ax.grid(True, which="both", alpha=0.3)
        _plain_log_labels(ax.xaxis)
        _plain_log_labels(ax.yaxis)
    keys = sorted(handles)
    axes[0].legend([handles[k] for k in keys], [f"B={b}, lr={lr:g}" for b, lr in keys], fontsize="small",
                   title="global batch, base lr (lowest seed)", loc="best")
    fig.suptitle(f"{title}\nbands: {CI_PERCENTILES[0]:g}th-{CI_PERCENTILES[1]:g}th percentile of "
                 f"{N_BOOT} bootstrap resamples of the window's steps; values <= 0 not shown")
    return [_save(fig, path)]


def plot_steps_to_target(runs: Iterable[Run], out: PathLike, target: Optional[Target] = None) -> list[Path]:
    """Steps to the target vs global batch: every run, the best per batch, the
    S(B) = S_min + E_min/B fit, and vertical lines at B_crit and at the median
    measured B_simple (second half of training, over runs)."""
    return [_plot_to_target(list(runs), Path(out) / STEPS_FIGURE, target, examples=False)]


def plot_examples_to_target(runs: Iterable[Run], out: PathLike, target: Optional[Target] = None) -> list[Path]:
    """Examples (samples) to the target vs global batch, with E(B) = S_min B + E_min
    from the same fit: flat (sample-efficient) below B_crit, rising above it."""
    return [_plot_to_target(list(runs), Path(out) / EXAMPLES_FIGURE, target, examples=True)]


def _plot_to_target(runs: list[Run], path: Path, target: Optional[Target], examples: bool) -> Path:
    what = "Examples" if examples else "Steps"
    resolved, note = study_target(runs, target)
    title = f"{what} to target vs global batch: {_study_names(runs)}"
    if resolved is None:
        return _no_data_figure(path, title, note)
    table, best, fit = fit_study(runs, resolved)
    if not best["reached"].any():
        return _no_data_figure(path, f"{title}\ntarget {resolved.describe()}", fit.reason)
    column = "samples_to_target" if examples else "steps_to_target"
    fig = _new_figure((10.0, 6.0))
    ax = fig.subplots()
    reached = table[table[column].notna()]
    ax.scatter(reached["global_batch"], reached[column], s=18, color="0.55", zorder=2,
               label="each run (lr, seed) that reached the target")
    ok = best[best[column].notna()]
    ax.plot(ok["global_batch"], ok[column], "o", markersize=8, color="tab:blue", zorder=3,
            label="best per batch (fewest steps)")
    batches = sorted(best["global_batch"].tolist())
    spots = [float(b) for b in batches]
    if fit.ok:
        curve = fit.curve_s * fit.curve_b if examples else fit.curve_s
        form = "E = S_min B + E_min" if examples else "S = S_min + E_min / B"
        ax.plot(fit.curve_b, curve, "-", color="tab:blue", lw=1.5, zorder=1,
                label=f"fit {form}: S_min = {fmt(fit.s_min)} steps, E_min = {fmt(fit.e_min)} samples")
        ax.axvline(fit.b_crit, color="tab:red", linestyle="--", lw=1.4,
                   label=f"B_crit = E_min/S_min = {fmt(fit.b_crit)}")
        asymptote = fit.e_min if examples else fit.s_min
        ax.axhline(asymptote, color="0.4", linestyle=":", lw=1.0,
                   label=f"{'E_min' if examples else 'S_min'} = {fmt(asymptote)}")
        spots.append(fit.b_crit)
    else:
        ax.text(0.02, 0.03, f"no S(B) fit: {fit.reason}", transform=ax.transAxes, fontsize="small",
                wrap=True, va="bottom", color="tab:red")
    _per_batch, b_simple = b_simple_summary(runs)
    if math.isfinite(b_simple) and b_simple > 0:
        ax.axvline(b_simple, color="tab:green", linestyle="-.", lw=1.4,
                   label=f"median measured B_simple = {fmt(b_simple)}")
        spots.append(b_simple)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlim(min(spots) / 1.6, max(spots) * 1.6)
    _batch_axis(ax, batches, keep_limits=True)
    _plain_log_labels(ax.yaxis)
    ax.set_xlabel("global batch B (samples per step)")
    ax.set_ylabel("samples to target" if examples else "optimizer steps to target")
    ax.grid(True, which="both", alpha=0.3)
    # Steps fall with batch and examples rise: put the legend where the curve is not.
    ax.legend(fontsize="small", loc="upper center" if examples else "upper right")
    fig.suptitle(f"{title}\ntarget {resolved.describe()}; steps at eval resolution")
    return _save(fig, path)


def plot_all(runs: Iterable[Run], out: PathLike, target: Optional[Target] = None) -> list[Path]:
    """Every figure of a study into `out`; the paths in ALL_FIGURES order."""
    runs = list(runs)
    resolved, _note = study_target(runs, target)
    _table, _best, fit = fit_study(runs, resolved)
    b_crit = fit.b_crit if fit.ok else None
    paths: list[Path] = []
    paths += plot_loss_vs_samples(runs, out)
    paths += plot_final_vs_batch(runs, out)
    paths += plot_b_simple_vs_samples(runs, out, b_crit=b_crit)
    paths += plot_b_simple_vs_loss(runs, out)
    paths += plot_noise_fit(runs, out)
    paths += plot_steps_to_target(runs, out, resolved)
    paths += plot_examples_to_target(runs, out, resolved)
    return paths


_NO_B_SIMPLE: str = (
    "no run has more than one small batch (n*m = 1: one rank and gns.microbatches = 1), "
    "so the gradient noise scale cannot be separated"
)


def _no_data_figure(path: Path, title: str, reason: str) -> Path:
    """A PNG that says why there is nothing to draw, in place of the figure,
    so a report keeps its layout and the reader learns what is missing."""
    fig = _new_figure((10.0, 4.0))
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, textwrap.fill(f"no data: {reason}", 70), ha="center", va="center", fontsize=13,
            transform=ax.transAxes, color="0.15",
            bbox={"boxstyle": "round,pad=0.8", "facecolor": "#fff4e0", "edgecolor": "#d08000"})
    fig.suptitle(title)
    return _save(fig, path, note=f"no data: {reason}")


def _run_lines(
    ax: Axes, runs: list[Run], series: list[tuple[Run, npt.NDArray[np.float64], npt.NDArray[np.float64]]]
) -> dict[tuple[int, float], Line2D]:
    """One line per run (colour = batch, style = lr), positive finite points only."""
    colours, styles = _batch_colours(runs), _lr_styles(runs)
    handles: dict[tuple[int, float], Line2D] = {}
    for run, x, y in series:
        shown = _positive(x) & _positive(y)
        if not shown.any():
            continue
        key = (run.global_batch, float(run.attrs["base_lr"]))
        # NaN where hidden keeps gaps as gaps instead of joining across them.
        (line,) = ax.plot(x, np.where(shown, y, np.nan), lw=1.1, color=colours[key[0]], linestyle=styles[key[1]])
        handles.setdefault(key, line)
    return handles


def _legend(ax: Axes, handles: dict[tuple[int, float], Line2D], extra: bool = False, loc: str = "best") -> None:
    keys = sorted(handles)
    items = [handles[k] for k in keys]
    labels = [f"B={b}, lr={lr:g}" for b, lr in keys]
    if extra:
        more, more_labels = ax.get_legend_handles_labels()
        items, labels = items + more, labels + more_labels
    ax.legend(items, labels, fontsize="small", loc=loc, title="global batch (samples), base lr")


def _batch_axis(ax: Axes, batches: list[int], keep_limits: bool = False) -> None:
    """Log-2 batch axis labelled at the measured batch sizes only."""
    if not keep_limits:
        ax.set_xscale("log", base=2)
    if batches:
        ax.xaxis.set_major_locator(FixedLocator(batches))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("global batch (samples)")


def _one_seed_each(runs: list[Run]) -> list[Run]:
    chosen: dict[tuple[int, float], Run] = {}
    for run in sorted(runs, key=lambda r: int(r.attrs["seed"])):
        chosen.setdefault((run.global_batch, float(run.attrs["base_lr"])), run)
    return [chosen[k] for k in sorted(chosen)]


def _positive(values: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    values = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore"):
        finite: npt.NDArray[np.bool_] = np.isfinite(values)  # ufuncs are typed as returning Any
        return finite & (values > 0)

def _plain_log_labels(axis: Axis) -> None:
    """Plain numbers (0.6, 20, 3000) on a log axis spanning about a decade,
    where matplotlib would write 6x10^-1 or label a single tick."""
    axis.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


class _PlainLogFormatter(LogFormatter):  # type: ignore[misc]  # matplotlib here has no types: LogFormatter is Any
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


def _save(fig: Figure, path: Path, note: Optional[str] = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The note also goes into the PNG's text metadata, where scripts and
    # tests can read why a figure is empty without looking at it.
    fig.savefig(path, dpi=_DPI, metadata={"Description": note} if note else None)
    return path


def _finite(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # inf would wreck autoscaling; NaN just leaves a gap in the line.
    return np.where(np.isfinite(values), values, np.nan)


def _smooth(loss: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
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
