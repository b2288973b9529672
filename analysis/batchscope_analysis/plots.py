"""Figures of a study, written as PNG (and PDF, SVG on request) files.

Figures are drawn on matplotlib's Agg canvas directly, without pyplot, so no
display is needed and no global pyplot state leaks between calls.
`build_figures` returns the matplotlib Figures (for notebooks and tests);
the `plot_*` functions write one figure each in every requested format and
return the paths. Where there is nothing to draw a figure says
"no data: <reason>" instead of failing, so a report always has all its figures.

Readable at real study sizes (dozens to hundreds of runs):

- Colour is the global batch, on a log scale, with a colorbar whose ticks
  name each batch and its best learning rate; no per-run legend.
- Each batch's best learning rate (tuning.tuning_study: the study's score at
  equal epochs, or steps to target) is drawn in full colour; the other lrs
  faint. A study with one lr per batch has every run in full colour.
- Diverged runs are dashed, with a red x at their last point inside the
  axes, and never set the axis limits (those come from the other runs).
- Accuracy is in %, the gap in percentage points; seeds are individual
  points, and a bar spans them only where there are two or more.
- Tick labels that would overlap are thinned after layout, and the few
  legend entries left sit in a strip below the panels, off the data.
"""

from __future__ import annotations

import math
import textwrap
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator, Formatter, FuncFormatter, LogFormatter, NullLocator
from matplotlib.transforms import Bbox, blended_transform_factory

from batchscope_analysis.generalization import equal_epochs, final_by_batch
from batchscope_analysis.load import Run, runs_table
from batchscope_analysis.noise import (
    CI_PERCENTILES, N_BOOT, b_simple_summary, default_window, fit_noise, resmooth_samples, study_window,
)
from batchscope_analysis.scaling import fit_study
from batchscope_analysis.score import Score, study_score
from batchscope_analysis.sharpness import (
    NOT_MEASURED, SharpnessStudy, factor_texts, final_sharpness, has_sharpness, sharpness_study,
)
from batchscope_analysis.target import Target, study_target
from batchscope_analysis.textfmt import fmt
from batchscope_analysis.tuning import tuning_study

PathLike = Union[str, Path]

LOSS_FIGURE: str = "loss_vs_samples.png"
FINAL_FIGURE: str = "final_vs_batch.png"
B_SIMPLE_SAMPLES_FIGURE: str = "b_simple_vs_samples.png"
B_SIMPLE_LOSS_FIGURE: str = "b_simple_vs_loss.png"
NOISE_FIT_FIGURE: str = "noise_fit.png"
STEPS_FIGURE: str = "steps_to_target.png"
EXAMPLES_FIGURE: str = "examples_to_target.png"
SHARPNESS_SAMPLES_FIGURE: str = "sharpness_vs_samples.png"
SHARPNESS_BATCH_FIGURE: str = "sharpness_vs_batch.png"
# The order plot_all writes them in (and the report shows them in).
ALL_FIGURES: tuple[str, ...] = (
    LOSS_FIGURE, FINAL_FIGURE, B_SIMPLE_SAMPLES_FIGURE, B_SIMPLE_LOSS_FIGURE, NOISE_FIT_FIGURE, STEPS_FIGURE,
    EXAMPLES_FIGURE, SHARPNESS_SAMPLES_FIGURE, SHARPNESS_BATCH_FIGURE,
)
# File formats a figure can be written in (`--format png,pdf,svg`).
FORMATS: tuple[str, ...] = ("png", "pdf", "svg")
DEFAULT_FORMATS: tuple[str, ...] = ("png",)
__all__ = [
    "final_by_batch",  # re-exported: it used to live here
    "plot_all", "plot_loss_vs_samples", "plot_final_vs_batch", "plot_b_simple_vs_samples", "plot_b_simple_vs_loss",
    "plot_noise_fit", "plot_steps_to_target", "plot_examples_to_target", "plot_sharpness_vs_samples",
    "plot_sharpness_vs_batch", "build_figures", "figure_note",
    "parse_formats", "save_figure", "FORMATS",
]
_DPI: int = 120
# Lines of the lrs that are not their batch's best.
_FAINT_ALPHA: float = 0.2
_DIVERGED_COLOUR: str = "tab:red"
# The top of viridis is too pale to read on white.
_CMAP: Colormap = ListedColormap(colormaps["viridis"](np.linspace(0.0, 0.9, 256)), name="viridis_dark")
_NOTES: "weakref.WeakKeyDictionary[Figure, str]" = weakref.WeakKeyDictionary()


def parse_formats(text: str) -> tuple[str, ...]:
    """"png,pdf,svg" -> ("png", "pdf", "svg"); ValueError naming what is not one of FORMATS."""
    names = [part.strip().lower().lstrip(".") for part in text.split(",") if part.strip()]
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise ValueError(f"unknown figure format {', '.join(bad) or repr(text)}: use a comma list of "
                         f"{', '.join(FORMATS)}")
    return tuple(dict.fromkeys(names))


def figure_note(fig: Figure) -> Optional[str]:
    """"no data: <reason>" for a figure that stands in for one with nothing to draw, else None."""
    return _NOTES.get(fig)


# --- what every per-run figure needs to know about the study -------------------------------------


@dataclass(frozen=True)
class _Study:
    """Colours, each batch's best lr and the diverged runs of a study, shared by its figures."""

    batches: tuple[int, ...]
    norm: LogNorm
    best_lr: dict[int, float]  # batch -> best lr; batches without one (every lr diverged) are absent
    lrs_per_batch: dict[int, int]
    score: Score
    ranked_by: str
    # Completed runs that did not learn (generalization.equal_epochs' stalled
    # runs): drawn like diverged ones, so their collapsed values (a sharpness
    # of 0.1, a loss stuck at ln 10) do not set the axis limits.
    stalled: frozenset[str] = frozenset()

    def failed(self, run: Run) -> bool:
        return run.status.name == "diverged" or run.name in self.stalled

    def colour(self, batch: int) -> tuple[float, float, float, float]:
        rgba: tuple[float, float, float, float] = _CMAP(float(self.norm(batch)))
        return rgba

    def is_best(self, run: Run) -> bool:
        """A run at its batch's best lr (every run where a batch tried one lr)."""
        if self.lrs_per_batch.get(run.global_batch, 1) <= 1:
            return True
        return self.best_lr.get(run.global_batch) == float(run.attrs["base_lr"])

    @property
    def one_lr(self) -> bool:
        return all(n <= 1 for n in self.lrs_per_batch.values())


def _study(runs: list[Run]) -> _Study:
    batches = tuple(sorted({r.global_batch for r in runs})) or (1,)
    lo, hi = float(min(batches)), float(max(batches))
    if lo == hi:
        lo, hi = lo / 2.0, hi * 2.0
    score = study_score(runs)
    lrs: dict[int, set[float]] = {}
    for run in runs:
        lrs.setdefault(run.global_batch, set()).add(float(run.attrs["base_lr"]))
    best, ranked_by = _best_lrs(runs, score)
    return _Study(batches, LogNorm(lo, hi), best, {b: len(v) for b, v in lrs.items()}, score, ranked_by,
                  _stalled_runs(runs, score))


def _stalled_runs(runs: list[Run], score: Score) -> frozenset[str]:
    """The runs equal_epochs finds did not learn (none when it cannot compare)."""
    try:
        return frozenset(equal_epochs(runs, score).stalled_runs)
    except (ValueError, KeyError, IndexError, ZeroDivisionError):
        return frozenset()


def _best_lrs(runs: list[Run], score: Score) -> tuple[dict[int, float], str]:
    """Each batch's best lr as the answers choose it (tuning_study), and what it was ranked by."""
    if not runs:
        return {}, ""
    try:
        # One resample: only the point choice is used, not the intervals.
        tuning = tuning_study(runs, score, draws=1)
    except (ValueError, KeyError, IndexError, ZeroDivisionError):
        return {}, ""
    best = {b: t.lr for b, t in tuning.per_batch.items() if math.isfinite(t.lr)}
    what = "steps to target" if tuning.metric == "steps_to_target" else f"{score.noun} at equal epochs"
    return best, what


# --- the figures --------------------------------------------------------------------------------


def loss_figure(runs: Iterable[Run], study: Optional[_Study] = None) -> Figure:
    """Training loss (EMA-smoothed) and validation loss vs samples seen, one line per run."""
    runs = list(runs)
    st = study or _study(runs)
    fig = _new_figure((13.5, 5.8))
    (ax_train, ax_val), strip = _panels(fig, 1, 2, sharey=True)
    train_series, val_series = [], []
    for run in runs:
        train = run.train
        train_series.append((run, train["samples"].to_numpy(dtype=float),
                             _smooth(train["loss"].to_numpy(dtype=float))))
        evals = run.eval[run.eval["samples"] > 0]  # step 0 has no place on a log axis
        val_series.append((run, evals["samples"].to_numpy(dtype=float), evals["val_loss"].to_numpy(dtype=float)))
    drawn_train = _draw_runs(ax_train, st, train_series)
    drawn_val = _draw_runs(ax_val, st, val_series, marker="o")
    for ax, title in ((ax_train, "Training loss (EMA-smoothed, per step)"), (ax_val, "Validation loss (per eval)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("samples seen")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    both = drawn_train.merged(drawn_val)
    _set_limits(ax_train, both.xs, both.ys, log=True)  # shared y: both panels
    _set_limits(ax_val, both.xs, None, log=True)
    _mark_diverged(ax_train, drawn_train)
    _mark_diverged(ax_val, drawn_val)
    # Loss spans about a decade: plain numbers (0.4, 0.6, 1, 2) read better than 4x10^-1.
    _plain_log_labels(ax_train.yaxis)
    ax_train.set_ylabel("mean loss per sample")
    _colorbar(fig, [ax_train, ax_val], st)
    _run_legend(strip, st, both)
    fig.suptitle(f"Loss vs samples seen: {_study_names(runs)} ({_runs_count(runs)})")
    return _finish(fig)


def final_figure(runs: Iterable[Run], study: Optional[_Study] = None) -> Figure:
    """Final and best validation accuracy (%) and the generalization gap vs global batch at each
    batch's best lr, and that lr.

    Each seed is a point; a bar spans the seeds where there are two or more.
    Other lrs are faint lines of their seed means; diverged runs are a red x
    at the bottom of the panel. A study of mse runs (no accuracy) shows
    validation loss instead: best is the lowest, and the gap is val_loss -
    train_loss.
    """
    runs = list(runs)
    st = study or _study(runs)
    score = st.score
    accuracy = score.higher_is_better
    what = "Accuracy" if accuracy else "Validation loss"
    title = f"{what} and generalization gap vs global batch: {_study_names(runs)}"
    table = runs_table(runs)
    done = table[table["status"] != "running"]
    if not len(done):
        return _no_data(title, "no finished runs (all are still running)")
    diverged = done[done["status"] == "diverged"]
    ok = done[done["status"] != "diverged"]
    scale = 100.0 if accuracy else 1.0
    fig = _new_figure((13.5, 9.0))
    (ax_final, ax_best, ax_gap, ax_lr), strip = _panels(fig, 2, 2)
    chosen = _best_rows(ok, st)
    seeds = chosen.groupby("global_batch")["seed"].nunique() if len(chosen) else pd.Series(dtype=int)
    most = int(seeds.max()) if len(seeds) else 0
    fewest = int(seeds.min()) if len(seeds) else 0
    for ax, column in ((ax_final, score.final), (ax_best, score.best), (ax_gap, score.gap)):
        if not st.one_lr:
            for _lr, group in ok.groupby("base_lr"):
                means = group.groupby("global_batch")[column].mean().dropna() * scale
                ax.plot(means.index.to_numpy(dtype=float), means.to_numpy(dtype=float), "-o", color="0.45",
                        alpha=0.3, lw=0.9, markersize=3, zorder=1)
        for batch, group in chosen.groupby("global_batch"):
            values = group[column].to_numpy(dtype=float) * scale
            values = values[np.isfinite(values)]
            if not len(values):
                continue
            colour = st.colour(int(batch))
            if len(values) >= 2:
                ax.plot([batch, batch], [values.min(), values.max()], "-", color=colour, lw=2.5, alpha=0.6, zorder=2)
            # Seeds at one batch are spread a little sideways so coincident points stay visible.
            offsets = np.linspace(-0.04, 0.04, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(float(batch) * 2.0 ** offsets, values, s=26, color=colour, edgecolor="0.15", lw=0.5,
                       zorder=4)
        means = chosen.groupby("global_batch")[column].mean().dropna() * scale
        ax.plot(means.index.to_numpy(dtype=float), means.to_numpy(dtype=float), "-", color="0.2", lw=1.4, zorder=3)
        if len(diverged):
            # At the bottom edge: a diverged run has no value to place, only its batch.
            where = blended_transform_factory(ax.transData, ax.transAxes)
            ax.plot(diverged["global_batch"].to_numpy(dtype=float), np.full(len(diverged), 0.03), "x",
                    color=_DIVERGED_COLOUR, markersize=8, mew=2, transform=where, zorder=5, clip_on=False)
    batches = sorted(int(b) for b in done["global_batch"].unique())
    for ax in (ax_final, ax_best, ax_gap, ax_lr):
        _batch_axis(ax, batches)
        ax.grid(True, alpha=0.3)
    log_y = not accuracy and _spans_decades(ok[[score.final, score.best]].to_numpy(dtype=float))
    for ax in (ax_final, ax_best):
        if log_y:
            ax.set_yscale("log")
            _plain_log_labels(ax.yaxis)
    # Final and best share one scale so the drop from best to final reads off directly.
    lows = [ax.get_ylim()[0] for ax in (ax_final, ax_best)]
    highs = [ax.get_ylim()[1] for ax in (ax_final, ax_best)]
    for ax in (ax_final, ax_best):
        ax.set_ylim(min(lows), max(highs))
    if accuracy:
        ax_final.set_ylabel("validation accuracy (%)")
        ax_final.set_title("Final validation accuracy (last eval)")
        ax_best.set_ylabel("validation accuracy (%)")
        ax_best.set_title("Best validation accuracy (any eval)")
        ax_gap.set_ylabel("train - val accuracy at the last eval (% points)")
    else:
        ax_final.set_ylabel("validation loss (mean per sample)")
        ax_final.set_title("Final validation loss (last eval)")
        ax_best.set_ylabel("validation loss (mean per sample)")
        ax_best.set_title("Lowest validation loss (any eval)")
        ax_gap.set_ylabel("val loss - train loss at the last eval")
    ax_gap.set_title("Generalization gap")
    _lr_panel(ax_lr, done, st)
    handles: list[Artist] = [Line2D([], [], color="0.2", lw=1.4)]
    labels = ["each batch's best base lr: mean over seeds" if most >= 2 else "each batch's best base lr"]
    handles.append(Line2D([], [], ls="", marker="o", color="0.6", markeredgecolor="0.15", markersize=6))
    labels.append("each seed (colour = batch)" if most >= 2 else "the run (1 seed per batch and lr)")
    if most >= 2:
        handles.append(Line2D([], [], color="0.6", lw=2.5, alpha=0.6))
        labels.append(f"range over {most} seeds" if most == fewest else f"range over {fewest}-{most} seeds")
    if not st.one_lr:
        handles.append(Line2D([], [], color="0.45", alpha=0.3, marker="o", markersize=3, lw=0.9))
        labels.append("other base lrs (faint)")
    if len(diverged):
        handles.append(Line2D([], [], ls="", marker="x", color=_DIVERGED_COLOUR, markersize=8, mew=2))
        labels.append(f"diverged run ({len(diverged)}): no final value, at its batch")
    _strip_legend(strip, handles, labels)
    fig.suptitle(title)
    return _finish(fig)


def b_simple_samples_figure(runs: Iterable[Run], b_crit: Optional[float] = None,
                            study: Optional[_Study] = None) -> Figure:
    """B_simple (re-smoothed over the study's window in samples) vs samples seen, log axes.

    A dashed line marks B_crit from the steps-to-target fit when given, for
    comparison: McCandlish et al. find B_crit ~ B_noise during training.
    """
    runs = list(runs)
    st = study or _study(runs)
    title = f"Gradient noise scale B_simple vs samples seen: {_study_names(runs)}"
    window = study_window(runs)
    series = [(run, run.train["samples"].to_numpy(dtype=float), _b_simple(run, window)) for run in runs]
    if not any(_positive(y).any() for _run, _x, y in series):
        return _no_data(title, _NO_B_SIMPLE)
    fig = _new_figure((11.5, 6.2))
    (ax,), strip = _panels(fig, 1, 1)
    drawn = _draw_runs(ax, st, series)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ys = list(drawn.ys)
    extra: list[tuple[Artist, str]] = []
    if b_crit is not None and math.isfinite(b_crit) and b_crit > 0:
        line = ax.axhline(b_crit, color="black", linestyle="--", lw=1.2)
        extra.append((line, f"B_crit = {fmt(b_crit)} (S(B) fit)"))
        ys.append(np.array([b_crit]))
    _set_limits(ax, drawn.xs, ys, log=True)
    _mark_diverged(ax, drawn)
    ax.set_xlabel("samples seen")
    ax.set_ylabel("B_simple = tr(Sigma) / |G|^2 (samples)")
    ax.grid(True, which="both", alpha=0.3)
    _plain_log_labels(ax.yaxis)
    ax.set_title(f"EMA over {fmt(window)} samples at every batch size, re-smoothed from the raw norms; "
                 "values <= 0 are not shown on log axes", fontsize="small")
    _colorbar(fig, [ax], st)
    _run_legend(strip, st, drawn, extra)
    fig.suptitle(f"{title} ({_runs_count(runs)})")
    return _finish(fig)


def b_simple_loss_figure(runs: Iterable[Run], study: Optional[_Study] = None) -> Figure:
    """B_simple vs training loss (EMA-smoothed like the loss figure), log axes.

    The loss axis runs from high to low, so training proceeds left to right,
    and runs of different batch sizes are compared at equal loss rather than
    equal samples: the noise scale depends on where in training a run is.
    """
    runs = list(runs)
    st = study or _study(runs)
    title = f"Gradient noise scale B_simple vs training loss: {_study_names(runs)}"
    window = study_window(runs)
    series = [(run, _smooth(run.train["loss"].to_numpy(dtype=float)), _b_simple(run, window)) for run in runs]
    if not any((_positive(y) & _positive(x)).any() for _run, x, y in series):
        return _no_data(title, _NO_B_SIMPLE)
    fig = _new_figure((11.5, 6.2))
    (ax,), strip = _panels(fig, 1, 1)
    drawn = _draw_runs(ax, st, series)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _set_limits(ax, drawn.xs, drawn.ys, log=True)
    ax.invert_xaxis()
    _mark_diverged(ax, drawn)
    _plain_log_labels(ax.xaxis)
    ax.set_xlabel("training loss, mean per sample (EMA-smoothed; decreasing to the right)")
    ax.set_ylabel("B_simple = tr(Sigma) / |G|^2 (samples)")
    ax.grid(True, which="both", alpha=0.3)
    _plain_log_labels(ax.yaxis)
    _colorbar(fig, [ax], st)
    _run_legend(strip, st, drawn)
    fig.suptitle(f"{title} ({_runs_count(runs)})")
    return _finish(fig)


def noise_fit_figure(runs: Iterable[Run], window: Optional[int] = None, study: Optional[_Study] = None) -> Figure:
    """|G|^2, tr(Sigma) and their ratio from the windowed least-squares fit
    (noise.fit_noise) vs samples seen, with bootstrap confidence bands.

    One run per batch keeps the panels readable: the lowest seed at the
    batch's best lr (every lr where there is no best), not diverged where
    possible; the window is noise.default_window(run) unless given.
    """
    runs = list(runs)
    st = study or _study(runs)
    title = f"Noise fit per window, E|g_b|^2 = |G|^2 + tr(Sigma) x(b): {_study_names(runs)}"
    chosen = [r for r in _one_seed_each(runs, st) if len(r.batch_micro) > 1]
    fits = [(run, fit_noise(run, window or default_window(run))) for run in chosen]
    fits = [(run, fit) for run, fit in fits if len(fit) and np.isfinite(fit["g2"]).any()]
    if not fits:
        return _no_data(title, _NO_B_SIMPLE)
    fig = _new_figure((15.0, 6.0))
    axes, strip = _panels(fig, 1, 3)
    for run, fit in fits:
        colour = st.colour(run.global_batch)
        x = fit["samples_mid"].to_numpy(dtype=float)
        for ax, name in zip(axes, ("g2", "trsigma", "b_noise")):
            y = fit[name].to_numpy(dtype=float)
            lo, hi = fit[f"{name}_lo"].to_numpy(dtype=float), fit[f"{name}_hi"].to_numpy(dtype=float)
            shown = _positive(y)
            ax.plot(x[shown], y[shown], marker="o", markersize=2.5, lw=1.2, color=colour, zorder=3)
            # A band reaching zero or below is clipped to the panel instead
            # of vanishing: "could be ~0" is the information it carries.
            floor = 0.5 * float(np.nanmin(y[shown])) if shown.any() else np.nan
            band = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(floor)
            ax.fill_between(x[band], np.maximum(lo[band], floor), np.maximum(hi[band], floor),
                            color=colour, alpha=0.12, lw=0)
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
    _colorbar(fig, list(axes), st)
    which = "its best base lr" if not st.one_lr else "its base lr"
    _strip_legend(strip, [Line2D([], [], color="0.3", marker="o", markersize=2.5, lw=1.2),
                          Patch(color="0.3", alpha=0.12)],
                  [f"one run per batch: lowest seed at {which} (colour = batch)",
                   f"{CI_PERCENTILES[0]:g}th-{CI_PERCENTILES[1]:g}th percentile of {N_BOOT} bootstrap resamples "
                   "of the window's steps"])
    fig.suptitle(f"{title}\nvalues <= 0 not shown")
    return _finish(fig)


def to_target_figure(runs: Iterable[Run], target: Optional[Target] = None, examples: bool = False) -> Figure:
    """Steps (or examples) to the target vs global batch: every run, the best per batch, the
    S(B) = S_min + E_min/B fit, and vertical lines at B_crit and at the median measured B_simple."""
    runs = list(runs)
    what = "Examples" if examples else "Steps"
    resolved, note = study_target(runs, target)
    title = f"{what} to target vs global batch: {_study_names(runs)}"
    if resolved is None:
        return _no_data(title, note)
    table, best, fit = fit_study(runs, resolved)
    if not best["reached"].any():
        return _no_data(f"{title}\ntarget {resolved.describe()}", fit.reason)
    column = "samples_to_target" if examples else "steps_to_target"
    fig = _new_figure((11.0, 6.8))
    (ax,), strip = _panels(fig, 1, 1)
    reached = table[table[column].notna()]
    handles: list[Artist] = []
    labels: list[str] = []
    handles.append(ax.scatter(reached["global_batch"], reached[column], s=16, color="0.55", zorder=2))
    labels.append("each run (lr, seed) that reached the target")
    ok = best[best[column].notna()]
    (line,) = ax.plot(ok["global_batch"], ok[column], "o", markersize=8, color="tab:blue", zorder=3)
    handles.append(line)
    labels.append("best per batch (fewest steps)")
    batches = sorted(int(b) for b in best["global_batch"].tolist())
    spots = [float(b) for b in batches]
    if fit.ok:
        curve = fit.curve_s * fit.curve_b if examples else fit.curve_s
        form = "E = S_min B + E_min" if examples else "S = S_min + E_min / B"
        (line,) = ax.plot(fit.curve_b, curve, "-", color="tab:blue", lw=1.5, zorder=1)
        handles.append(line)
        labels.append(f"fit {form}: S_min = {fmt(fit.s_min)} steps, E_min = {fmt(fit.e_min)} samples")
        handles.append(ax.axvline(fit.b_crit, color="tab:red", linestyle="--", lw=1.4))
        labels.append(f"B_crit = E_min/S_min = {fmt(fit.b_crit)}")
        asymptote = fit.e_min if examples else fit.s_min
        handles.append(ax.axhline(asymptote, color="0.4", linestyle=":", lw=1.0))
        labels.append(f"{'E_min' if examples else 'S_min'} = {fmt(asymptote)}")
        spots.append(fit.b_crit)
    else:
        ax.text(0.02, 0.03, f"no S(B) fit: {fit.reason}", transform=ax.transAxes, fontsize="small",
                wrap=True, va="bottom", color="tab:red")
    _per_batch, b_simple = b_simple_summary(runs)
    if math.isfinite(b_simple) and b_simple > 0:
        handles.append(ax.axvline(b_simple, color="tab:green", linestyle="-.", lw=1.4))
        labels.append(f"median measured B_simple = {fmt(b_simple)}")
        spots.append(b_simple)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlim(min(spots) / 1.6, max(spots) * 1.6)
    _batch_axis(ax, batches, keep_limits=True)
    _plain_log_labels(ax.yaxis)
    ax.set_xlabel("global batch B (samples per step)")
    ax.set_ylabel("samples to target" if examples else "optimizer steps to target")
    ax.grid(True, which="both", alpha=0.3)
    _strip_legend(strip, handles, labels, ncols=2)
    fig.suptitle(f"{title}\ntarget {resolved.describe()}; steps at eval resolution")
    return _finish(fig)


def sharpness_samples_figure(runs: Iterable[Run], study: Optional[_Study] = None) -> Figure:
    """Sharpness (λ_max of the training-loss Hessian) at each evaluation that measured it vs samples
    seen, one line per run, log axes; like the loss figure: colour = batch, the best lr solid."""
    runs = list(runs)
    st = study or _study(runs)
    title = f"Sharpness vs samples seen: {_study_names(runs)}"
    if not any(has_sharpness(r) for r in runs):
        return _no_data(title, NOT_MEASURED)
    series: list[Series] = []
    for run in runs:
        # Only the measured evaluations: with eval.sharpness.every > 1 the rest are NaN, and a line
        # through the measured points reads better than isolated dots.
        measured = run.eval[np.isfinite(run.eval["sharpness"].to_numpy(dtype=float))]
        series.append((run, measured["samples"].to_numpy(dtype=float), measured["sharpness"].to_numpy(dtype=float)))
    if not any((_positive(x) & _positive(y)).any() for _run, x, y in series):
        return _no_data(title, "no positive sharpness after step 0 (a log axis shows none)")
    fig = _new_figure((11.5, 6.2))
    (ax,), strip = _panels(fig, 1, 1)
    drawn = _draw_runs(ax, st, series, marker="o")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _set_limits(ax, drawn.xs, drawn.ys, log=True)
    _mark_diverged(ax, drawn)
    ax.set_xlabel("samples seen")
    ax.set_ylabel("sharpness λ_max (training loss, fixed subset)")
    ax.grid(True, which="both", alpha=0.3)
    _plain_log_labels(ax.yaxis)
    ax.set_title("power iteration on Hessian-vector products at the evaluations that measured it; "
                 "values <= 0 and step 0 are not shown on log axes", fontsize="small")
    _colorbar(fig, [ax], st)
    _run_legend(strip, st, drawn)
    fig.suptitle(f"{title} ({_runs_count(runs)})")
    return _finish(fig)


def sharpness_batch_figure(runs: Iterable[Run], study: Optional[_Study] = None,
                           sharp: Optional[SharpnessStudy] = None) -> Figure:
    """Final sharpness vs global batch (left) and vs the generalization gap (right).

    Left: each batch at its best lr (sharpness.sharpness_study), each seed a
    point, a bar over the seeds where there are two or more, a line through
    the per-batch medians, and the fitted power law with its interval; other
    lrs are faint lines of their medians; diverged runs a red x at the bottom.
    Right: the same runs' final sharpness against their gap at that
    evaluation, with Spearman's ρ.
    """
    runs = list(runs)
    st = study or _study(runs)
    title = f"Final sharpness vs global batch and vs generalization gap: {_study_names(runs)}"
    if not any(has_sharpness(r) for r in runs):
        return _no_data(title, NOT_MEASURED)
    sharp = sharp if sharp is not None else sharpness_study(runs, best_lr=st.best_lr)
    if not sharp.per_run:
        return _no_data(title, "no completed run at a batch's best learning rate has a positive final sharpness")
    fig = _new_figure((13.5, 6.2))
    (ax_b, ax_g), strip = _panels(fig, 1, 2, sharey=True)
    legend = _faint_other_lrs(ax_b, runs, st) + _seed_points(ax_b, sharp, st)
    legend += _sharpness_fit(ax_b, sharp) + _diverged_at_bottom(ax_b, runs)
    ax_b.set_yscale("log")
    _batch_axis(ax_b, sorted({r.global_batch for r in runs}))
    ax_b.set_ylabel("final sharpness λ_max (last measurement)")
    ax_b.set_title("Final sharpness per global batch", fontsize="medium")
    _sharpness_gap_panel(ax_g, sharp, st)
    for ax in (ax_b, ax_g):
        ax.grid(True, which="both", alpha=0.3)
    _plain_log_labels(ax_b.yaxis)
    _colorbar(fig, [ax_b, ax_g], st)
    _strip_legend(strip, [h for h, _ in legend], [label for _, label in legend], ncols=2)
    fig.suptitle(title)
    return _finish(fig)


_Entries = list[tuple[Artist, str]]  # legend entries: (handle, label)


def _faint_other_lrs(ax: Axes, runs: list[Run], st: _Study) -> _Entries:
    """The other lrs' final sharpness per batch, a faint median line each (none with one lr per batch)."""
    if st.one_lr:
        return []
    per_lr: dict[float, dict[int, list[float]]] = {}
    for run in runs:
        final = final_sharpness(run, st.score) if run.status.name == "completed" and not st.is_best(run) else None
        if final is not None and final.sharpness > 0:
            per_lr.setdefault(final.base_lr, {}).setdefault(final.global_batch, []).append(final.sharpness)
    for values_at in per_lr.values():
        bs = sorted(values_at)
        ax.plot([float(b) for b in bs], [float(np.median(values_at[b])) for b in bs], "-o", color="0.45",
                alpha=0.3, lw=0.9, markersize=3, zorder=1)
    if not per_lr:
        return []
    return [(Line2D([], [], color="0.45", alpha=0.3, marker="o", markersize=3, lw=0.9),
             "other base lrs: median over seeds (faint)")]


def _seed_points(ax: Axes, sharp: SharpnessStudy, st: _Study) -> _Entries:
    """Each compared run a point at its batch (a bar over the seeds), and the per-batch median line."""
    by_batch = _sharpness_by_batch(sharp)
    for batch, values in sorted(by_batch.items()):
        colour = st.colour(batch)
        if len(values) >= 2:
            ax.plot([batch, batch], [min(values), max(values)], "-", color=colour, lw=2.5, alpha=0.6, zorder=2)
        offsets = np.linspace(-0.04, 0.04, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(float(batch) * 2.0 ** offsets, values, s=26, color=colour, edgecolor="0.15", lw=0.5, zorder=4)
    xs = [float(b) for b in sharp.batches]
    (line,) = ax.plot(xs, [sharp.median_per_batch[b] for b in sharp.batches], "-", color="0.2", lw=1.4, zorder=3)
    most = max(len(v) for v in by_batch.values())
    return [(line, "median per batch, each at its best base lr" if not st.one_lr else "median per batch"),
            (Line2D([], [], ls="", marker="o", color="0.6", markeredgecolor="0.15", markersize=6),
             "each seed (colour = batch)" if most >= 2 else "the run (1 seed per batch)")]


def _sharpness_by_batch(sharp: SharpnessStudy) -> dict[int, list[float]]:
    by_batch: dict[int, list[float]] = {}
    for r in sharp.per_run:
        by_batch.setdefault(r.global_batch, []).append(r.sharpness)
    return by_batch


def _sharpness_fit(ax: Axes, sharp: SharpnessStudy) -> _Entries:
    """The fitted power law through the per-batch mean log2 sharpness (none without a slope)."""
    if not math.isfinite(sharp.slope.value):
        return []
    by_batch = _sharpness_by_batch(sharp)
    xs = [float(b) for b in sharp.batches]
    logs = [sum(math.log2(v) for v in by_batch[b]) / len(by_batch[b]) for b in sharp.batches]
    mx, my = sum(math.log2(b) for b in xs) / len(xs), sum(logs) / len(logs)
    fit = [2.0 ** (my + sharp.slope.value * (math.log2(b) - mx)) for b in xs]
    (line,) = ax.plot(xs, fit, "--", color="black", lw=1.2, zorder=3)
    f = sharp.factor_per_doubling
    value, low, high = factor_texts(f)
    interval = f", 90 % interval {low} to {high}" if f.has_interval else ""
    return [(line, f"fit: {value} per doubling of B{interval} ({sharp.verdict.replace('_', ' ')})")]


def _diverged_at_bottom(ax: Axes, runs: list[Run]) -> _Entries:
    """A red x at the bottom edge at each diverged run's batch: it has no final value to place."""
    diverged = [r for r in runs if r.status.name == "diverged"]
    if not diverged:
        return []
    where = blended_transform_factory(ax.transData, ax.transAxes)
    ax.plot([float(r.global_batch) for r in diverged], np.full(len(diverged), 0.03), "x",
            color=_DIVERGED_COLOUR, markersize=8, mew=2, transform=where, zorder=5, clip_on=False)
    return [(Line2D([], [], ls="", marker="x", color=_DIVERGED_COLOUR, markersize=8, mew=2),
             f"diverged run ({len(diverged)}): no final value, at its batch")]


def _sharpness_gap_panel(ax: Axes, sharp: SharpnessStudy, st: _Study) -> None:
    """Final sharpness against the gap at that evaluation, titled with Spearman's ρ."""
    accuracy = st.score.higher_is_better
    gap_scale = 100.0 if accuracy else 1.0
    for r in sharp.per_run:
        ax.scatter([gap_scale * r.gap], [r.sharpness], s=26, color=st.colour(r.global_batch), edgecolor="0.15",
                   lw=0.5, zorder=4)
    c = sharp.correlation
    rho = (f"Spearman ρ = {c.value:+.2f}, 90 % interval {c.low:+.2f} to {c.high:+.2f}" if c.has_interval
           else f"no correlation: {c.reason}")
    ax.set_title(textwrap.fill(f"Final sharpness vs gap at that evaluation ({rho})", 70), fontsize="medium")
    ax.set_xlabel("train - val accuracy (% points)" if accuracy else "val loss - train loss")


def build_figures(runs: Iterable[Run], target: Optional[Target] = None) -> dict[str, Figure]:
    """Every figure of a study, drawn but not written, keyed by file name in ALL_FIGURES order."""
    runs = list(runs)
    st = _study(runs)
    resolved, _note = study_target(runs, target)
    _table, _best, fit = fit_study(runs, resolved)
    b_crit = fit.b_crit if fit.ok else None
    return {
        LOSS_FIGURE: loss_figure(runs, st),
        FINAL_FIGURE: final_figure(runs, st),
        B_SIMPLE_SAMPLES_FIGURE: b_simple_samples_figure(runs, b_crit, st),
        B_SIMPLE_LOSS_FIGURE: b_simple_loss_figure(runs, st),
        NOISE_FIT_FIGURE: noise_fit_figure(runs, study=st),
        STEPS_FIGURE: to_target_figure(runs, resolved, examples=False),
        EXAMPLES_FIGURE: to_target_figure(runs, resolved, examples=True),
        SHARPNESS_SAMPLES_FIGURE: sharpness_samples_figure(runs, st),
        SHARPNESS_BATCH_FIGURE: sharpness_batch_figure(runs, st),
    }


# --- writing ------------------------------------------------------------------------------------


def plot_loss_vs_samples(runs: Iterable[Run], out: PathLike, formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Training and validation loss vs samples seen (loss_figure), written in each format."""
    return save_figure(loss_figure(runs), Path(out) / LOSS_FIGURE, formats)


def plot_final_vs_batch(runs: Iterable[Run], out: PathLike, formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Final and best validation accuracy and gap vs global batch (final_figure)."""
    return save_figure(final_figure(runs), Path(out) / FINAL_FIGURE, formats)


def plot_b_simple_vs_samples(runs: Iterable[Run], out: PathLike, b_crit: Optional[float] = None,
                             formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """B_simple vs samples seen (b_simple_samples_figure)."""
    return save_figure(b_simple_samples_figure(runs, b_crit), Path(out) / B_SIMPLE_SAMPLES_FIGURE, formats)


def plot_b_simple_vs_loss(runs: Iterable[Run], out: PathLike, formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """B_simple vs training loss (b_simple_loss_figure)."""
    return save_figure(b_simple_loss_figure(runs), Path(out) / B_SIMPLE_LOSS_FIGURE, formats)


def plot_noise_fit(runs: Iterable[Run], out: PathLike, window: Optional[int] = None,
                   formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """The windowed noise fit (noise_fit_figure)."""
    return save_figure(noise_fit_figure(runs, window), Path(out) / NOISE_FIT_FIGURE, formats)


def plot_steps_to_target(runs: Iterable[Run], out: PathLike, target: Optional[Target] = None,
                         formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Steps to the target vs global batch, with the S(B) fit (to_target_figure)."""
    return save_figure(to_target_figure(runs, target, examples=False), Path(out) / STEPS_FIGURE, formats)


def plot_examples_to_target(runs: Iterable[Run], out: PathLike, target: Optional[Target] = None,
                            formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Examples (samples) to the target vs global batch, with E(B) = S_min B + E_min from the same
    fit: flat (sample-efficient) below B_crit, rising above it."""
    return save_figure(to_target_figure(runs, target, examples=True), Path(out) / EXAMPLES_FIGURE, formats)


def plot_sharpness_vs_samples(runs: Iterable[Run], out: PathLike,
                              formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Sharpness vs samples seen, one line per run (sharpness_samples_figure)."""
    return save_figure(sharpness_samples_figure(runs), Path(out) / SHARPNESS_SAMPLES_FIGURE, formats)


def plot_sharpness_vs_batch(runs: Iterable[Run], out: PathLike,
                            formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Final sharpness vs global batch and vs the generalization gap (sharpness_batch_figure)."""
    return save_figure(sharpness_batch_figure(runs), Path(out) / SHARPNESS_BATCH_FIGURE, formats)


def plot_all(runs: Iterable[Run], out: PathLike, target: Optional[Target] = None,
             formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Every figure of a study into `out`, each in every format: the paths in ALL_FIGURES order,
    formats in the order given within each figure."""
    paths: list[Path] = []
    for name, fig in build_figures(runs, target).items():
        paths += save_figure(fig, Path(out) / name, formats)
    return paths


def save_figure(fig: Figure, path: PathLike, formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Writes `fig` as `path` with each format's suffix; the paths written.

    A "no data" figure's note also goes into the file's metadata (PNG and SVG
    Description, PDF Subject), where scripts and tests can read why a figure
    is empty without looking at it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    note = figure_note(fig)
    written = []
    for name in formats:
        if name not in FORMATS:
            raise ValueError(f"unknown figure format {name!r}: one of {', '.join(FORMATS)}")
        target = path.with_suffix(f".{name}")
        metadata = None
        if note:
            metadata = {"Subject": note} if name == "pdf" else {"Description": note}
        # "tight" keeps every label and the legend strip inside the file.
        fig.savefig(target, format=name, dpi=_DPI, metadata=metadata, bbox_inches="tight", pad_inches=0.08)
        written.append(target)
    return written


_NO_B_SIMPLE: str = (
    "no run has more than one small batch (n*m = 1: one rank and gns.microbatches = 1), "
    "so the gradient noise scale cannot be separated"
)


def _no_data(title: str, reason: str) -> Figure:
    """A figure that says why there is nothing to draw, in place of the figure,
    so a report keeps its layout and the reader learns what is missing."""
    fig = _new_figure((10.0, 4.0))
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, textwrap.fill(f"no data: {reason}", 70), ha="center", va="center", fontsize=13,
            transform=ax.transAxes, color="0.15",
            bbox={"boxstyle": "round,pad=0.8", "facecolor": "#fff4e0", "edgecolor": "#d08000"})
    fig.suptitle(title)
    _NOTES[fig] = f"no data: {reason}"
    return fig


# --- per-run lines --------------------------------------------------------------------------------

Series = tuple[Run, npt.NDArray[np.float64], npt.NDArray[np.float64]]


@dataclass
class _Drawn:
    """What _draw_runs drew: the points that may set the limits, and the diverged lines."""

    xs: list[npt.NDArray[np.float64]]
    ys: list[npt.NDArray[np.float64]]
    diverged: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]
    kinds: set[str]

    def merged(self, other: "_Drawn") -> "_Drawn":
        return _Drawn(self.xs + other.xs, self.ys + other.ys, self.diverged + other.diverged,
                      self.kinds | other.kinds)


def _draw_runs(ax: Axes, st: _Study, series: list[Series], marker: str = "") -> _Drawn:
    """One line per run, positive finite points only: colour = batch; the batch's best lr solid,
    other lrs faint, diverged runs dashed (and left out of the limits)."""
    drawn = _Drawn([], [], [], set())
    # Faint first, best on top.
    order = sorted(series, key=lambda s: (st.is_best(s[0]), s[0].global_batch))
    for run, x, y in order:
        x = np.asarray(x, dtype=float)
        y = _finite(np.asarray(y, dtype=float))
        shown = _positive(x) & _positive(y)
        if not shown.any():
            continue
        colour = st.colour(run.global_batch)
        # NaN where hidden keeps gaps as gaps instead of joining across them.
        ys = np.where(shown, y, np.nan)
        if st.failed(run):
            ax.plot(x, ys, lw=1.0, ls="--", color=colour, alpha=0.8, zorder=2, marker=marker, markersize=2.5)
            drawn.diverged.append((x, ys))
            drawn.kinds.add("diverged")
            continue
        best = st.is_best(run)
        ax.plot(x, ys, lw=1.5 if best else 0.9, color=colour, alpha=1.0 if best else _FAINT_ALPHA,
                zorder=3 if best else 1, marker=marker, markersize=3 if best else 2)
        drawn.xs.append(x[shown])
        drawn.ys.append(y[shown])
        drawn.kinds.add("best" if best else "other")
    return drawn


def _set_limits(ax: Axes, xs: Optional[list[npt.NDArray[np.float64]]],
                ys: Optional[list[npt.NDArray[np.float64]]], log: bool) -> None:
    """Axis limits from the given (non-diverged) points, with a small margin."""
    for values, setter in ((xs, ax.set_xlim), (ys, ax.set_ylim)):
        if not values:
            continue
        flat = np.concatenate([np.asarray(v, dtype=float).ravel() for v in values])
        flat = flat[_positive(flat)] if log else flat[np.isfinite(flat)]
        if not len(flat):
            continue
        lo, hi = float(flat.min()), float(flat.max())
        if log:
            pad = max((hi / lo) ** 0.04, 1.05)
            setter(lo / pad, hi * pad)
        else:
            pad = 0.04 * (hi - lo) or 0.05 * abs(hi) or 1.0
            setter(lo - pad, hi + pad)


def _mark_diverged(ax: Axes, drawn: _Drawn) -> None:
    """A red x at each diverged run's last point inside the axes before it left them (or ended)."""
    xlo, xhi = sorted(ax.get_xlim())
    ylo, yhi = sorted(ax.get_ylim())
    for x, y in drawn.diverged:
        with np.errstate(invalid="ignore"):
            inside = np.isfinite(y) & (y >= ylo) & (y <= yhi) & (x >= xlo) & (x <= xhi)
        where = np.flatnonzero(inside)
        if not len(where):
            continue
        start = where[0]
        out = np.flatnonzero(~inside[start:])
        end = start + out[0] - 1 if len(out) else where[-1]
        ax.plot([x[end]], [y[end]], "x", color=_DIVERGED_COLOUR, markersize=9, mew=2.2, zorder=6)


def _run_legend(strip: Axes, st: _Study, drawn: _Drawn, extra: Sequence[tuple[Artist, str]] = ()) -> None:
    """The few entries a per-run figure needs: what solid, faint and dashed mean (colour is on the colorbar)."""
    handles: list[Artist] = []
    labels: list[str] = []
    if "best" in drawn.kinds:
        handles.append(Line2D([], [], color="0.25", lw=1.5))
        labels.append("each batch's best base lr" + (f" (by {st.ranked_by})" if st.ranked_by else "")
                      if not st.one_lr else "each run (one line per seed)")
    if "other" in drawn.kinds:
        handles.append(Line2D([], [], color="0.25", lw=0.9, alpha=_FAINT_ALPHA * 1.5))
        labels.append("other base lrs (faint)")
    if "diverged" in drawn.kinds:
        handles.append(Line2D([], [], color="0.25", lw=1.0, ls="--", marker="x", markeredgecolor=_DIVERGED_COLOUR,
                              markersize=8, mew=2))
        labels.append("diverged or stalled run: x = last point shown; not in the limits")
    for artist, label in extra:
        handles.append(artist)
        labels.append(label)
    _strip_legend(strip, handles, labels)


# --- layout -------------------------------------------------------------------------------------


def _new_figure(size: tuple[float, float]) -> Figure:
    # Constrained layout keeps the suptitle, colorbar and axis labels from overlapping.
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _panels(fig: Figure, rows: int, cols: int, sharey: bool = False) -> tuple[list[Axes], Axes]:
    """rows x cols data panels and, below them, a strip without axes for the legend: off the data."""
    grid = fig.add_gridspec(rows + 1, cols, height_ratios=[1.0] * rows + [0.02])
    axes: list[Axes] = []
    for i in range(rows):
        for j in range(cols):
            axes.append(fig.add_subplot(grid[i, j], sharey=axes[0] if sharey and axes else None))
    strip = fig.add_subplot(grid[rows, :])
    strip.set_axis_off()
    return axes, strip


def _strip_legend(strip: Axes, handles: Sequence[Artist], labels: Sequence[str], ncols: int = 0) -> None:
    if not handles:
        return
    ncols = ncols or min(len(handles), 3)
    strip.legend(list(handles), list(labels), loc="center", ncols=ncols, fontsize="small", frameon=False)


def _colorbar(fig: Figure, axes: list[Axes], st: _Study) -> None:
    """Global batch on a log colour scale; each tick names the batch and, where lrs were tuned, its best lr."""
    bar = fig.colorbar(ScalarMappable(norm=st.norm, cmap=_CMAP), ax=axes, pad=0.01, aspect=30)
    bar.set_ticks([float(b) for b in st.batches])
    bar.minorticks_off()

    def label(value: float, _pos: Optional[int] = None) -> str:
        batch = min(st.batches, key=lambda b: abs(math.log(b / value)) if value > 0 else math.inf)
        if st.one_lr:
            return f"{batch:g}"
        lr = st.best_lr.get(batch)
        return f"{batch:g}: lr {lr:g}" if lr is not None else f"{batch:g}: none"

    bar.ax.yaxis.set_major_formatter(FuncFormatter(label))
    bar.set_label("global batch (samples)" + ("" if st.one_lr else ": its best base lr"))


def _finish(fig: Figure) -> Figure:
    """Lays the figure out and hides tick labels that would overlap their neighbours."""
    fig.canvas.draw()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            _thin_tick_labels(axis, fig)
    return fig


def tick_labels(axis: Axis) -> list[tuple[float, bool, "Text"]]:
    """(location, major?, label) of the labelled ticks inside the view, as last drawn."""
    lo, hi = sorted(axis.get_view_interval())
    tol = 1e-9 * max(abs(lo), abs(hi), 1e-300)
    out: list[tuple[float, bool, Text]] = []
    for major in (True, False):
        locs = axis.get_majorticklocs() if major else axis.get_minorticklocs()
        ticks = axis.get_major_ticks(len(locs)) if major else axis.get_minor_ticks(len(locs))
        for loc, tick in zip(locs, ticks):
            if not lo - tol <= loc <= hi + tol:
                continue
            for text in (tick.label1, tick.label2):
                if text.get_visible() and text.get_text():
                    out.append((float(loc), major, text))
    return out


def _thin_tick_labels(axis: Axis, fig: Figure) -> None:
    """Keeps major labels first, then minor ones, each only if it overlaps none kept."""
    renderer = fig.canvas.get_renderer()
    labels = tick_labels(axis)
    if len(labels) < 2:
        return
    horizontal = axis.axis_name == "x"
    boxes = [(loc, major, text.get_window_extent(renderer).padded(1.5)) for loc, major, text in labels]
    kept: list[tuple[float, bool, Bbox]] = []
    dropped = False
    for want_major in (True, False):
        for loc, major, box in sorted((b for b in boxes if b[1] == want_major),
                                      key=lambda b: float(b[2].x0 if horizontal else b[2].y0)):
            if any(_overlap(box, other) for _l, _m, other in kept):
                dropped = True
            else:
                kept.append((loc, major, box))
    if not dropped:
        return
    for major in (True, False):
        locs = [loc for loc, m, _b in kept if m == major]
        inner = axis.get_major_formatter() if major else axis.get_minor_formatter()
        only = _OnlyAt(inner, locs)
        if major:
            axis.set_major_formatter(only)
        else:
            axis.set_minor_formatter(only)


def _overlap(a: Bbox, b: Bbox) -> bool:
    return bool(a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1)


class _OnlyAt(Formatter):  # type: ignore[misc]  # matplotlib here has no types: Formatter is Any
    """Another formatter's labels at the given locations only (the rest blank)."""

    def __init__(self, inner: Formatter, locs: Sequence[float]) -> None:
        self.inner = inner
        self.keep = np.asarray(sorted(locs), dtype=float)

    def __call__(self, x: float, pos: Optional[int] = None) -> str:
        if len(self.keep) and np.isclose(x, self.keep, rtol=1e-9, atol=0.0).any():
            return str(self.inner(x, pos))
        return ""

    def set_locs(self, locs: Sequence[float]) -> None:
        super().set_locs(locs)
        self.inner.set_locs(locs)

    def get_offset(self) -> str:
        return str(self.inner.get_offset())


# --- axes -----------------------------------------------------------------------------------------


def _batch_axis(ax: Axes, batches: list[int], keep_limits: bool = False) -> None:
    """Log-2 batch axis labelled at the measured batch sizes only."""
    if not keep_limits:
        ax.set_xscale("log", base=2)
    if batches:
        ax.xaxis.set_major_locator(FixedLocator(batches))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("global batch (samples)")


def _lr_panel(ax: Axes, done: pd.DataFrame, st: _Study) -> None:
    """Each batch's best base lr (colour = batch) among the lrs tried (grey), diverged lrs as red x."""
    tried = done[["global_batch", "base_lr"]].drop_duplicates()
    ax.scatter(tried["global_batch"], tried["base_lr"], s=14, color="0.7", zorder=1)
    bad = done[done["status"] == "diverged"][["global_batch", "base_lr"]].drop_duplicates()
    if len(bad):
        ax.plot(bad["global_batch"], bad["base_lr"], "x", color=_DIVERGED_COLOUR, markersize=8, mew=2, zorder=4)
    best = sorted(st.best_lr.items()) if not st.one_lr else sorted(
        (int(b), float(lr)) for b, lr in tried.itertuples(index=False))
    if best:
        xs = [float(b) for b, _lr in best]
        ax.plot(xs, [lr for _b, lr in best], "-", color="0.2", lw=1.2, zorder=2)
        ax.scatter(xs, [lr for _b, lr in best], s=46, c=[st.colour(b) for b, _lr in best], edgecolor="0.15",
                   lw=0.5, zorder=3)
    ax.set_yscale("log", base=2)
    lrs = sorted(float(v) for v in tried["base_lr"].unique())
    if lrs:
        ax.yaxis.set_major_locator(FixedLocator(lrs))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_ylim(lrs[0] / 1.5, lrs[-1] * 1.5)
    ax.set_ylabel("base lr")
    ranked = f" (by {st.ranked_by})" if st.ranked_by else ""
    ax.set_title(f"Best base lr per batch{ranked}" if not st.one_lr else "Base lr per batch (one tried)",
                 fontsize="medium")


def _best_rows(table: pd.DataFrame, st: _Study) -> pd.DataFrame:
    """The runs-table rows at each batch's best lr (every row where a batch tried one lr)."""
    keep = [
        st.lrs_per_batch.get(int(b), 1) <= 1 or st.best_lr.get(int(b)) == float(lr)
        for b, lr in zip(table["global_batch"], table["base_lr"])
    ]
    return table[np.asarray(keep, dtype=bool)] if len(table) else table


def _spans_decades(values: npt.NDArray[np.float64]) -> bool:
    flat = np.asarray(values, dtype=float).ravel()
    flat = flat[_positive(flat)]
    return bool(len(flat) and flat.max() / flat.min() > 20.0)


def _b_simple(run: Run, window: float) -> npt.NDArray[np.float64]:
    """The run's b_simple re-smoothed over `window` samples, row for row (the answers' numbers)."""
    if not len(run.gns):
        return np.zeros(0)
    values: npt.NDArray[np.float64] = resmooth_samples(run, window)["b_simple"].to_numpy(dtype=float)
    return values


def _one_seed_each(runs: list[Run], st: _Study) -> list[Run]:
    """Per batch, the lowest seed at its best lr (per (batch, lr) without one), non-diverged first."""
    chosen: dict[tuple[int, float], Run] = {}
    ranked = sorted(runs, key=lambda r: (r.status.name == "diverged", int(r.attrs["seed"])))
    for run in ranked:
        if st.best_lr and not st.is_best(run) and run.global_batch in st.best_lr:
            continue
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


def _study_names(runs: list[Run]) -> str:
    names = sorted({str(r.attrs.get("study", "")) for r in runs} - {""})
    return ", ".join(names) if names else "(no study name)"


def _runs_count(runs: list[Run]) -> str:
    return f"{len(runs)} run{'s' if len(runs) != 1 else ''}"
