"""One self-contained HTML report of a study: the answers first, then figures and tables.

Figures are embedded as base64 PNG data URIs and the style sheet is inline,
so the single file can be mailed or attached to a ticket and still open.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
import os
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Union

import numpy as np
import pandas as pd

from batchscope_analysis import __version__
from batchscope_analysis.answers import ANSWERS_FILE, write_answers
from batchscope_analysis.findings import Findings, compute_findings
from batchscope_analysis.generalization import final_by_batch
from batchscope_analysis.load import Run, runs_table
from batchscope_analysis.plots import (
    B_SIMPLE_LOSS_FIGURE,
    B_SIMPLE_SAMPLES_FIGURE,
    EXAMPLES_FIGURE,
    FINAL_FIGURE,
    LOSS_FIGURE,
    NOISE_FIT_FIGURE,
    SHARPNESS_BATCH_FIGURE,
    SHARPNESS_SAMPLES_FIGURE,
    STEPS_FIGURE,
    plot_all,
)
from batchscope_analysis.score import ACCURACY, LOSS, LOSS_MSE, Score
from batchscope_analysis.target import Target

PathLike = Union[str, Path]

CAPTIONS: dict[str, str] = {
    LOSS_FIGURE: "Training loss per step (left) and validation loss per evaluation (right) against samples seen; "
                 "colour is the global batch, each batch's best learning rate in full colour, the others faint, "
                 "diverged runs dashed and kept out of the axis limits.",
    FINAL_FIGURE: "Final and best validation accuracy (%) and the generalization gap per global batch at each "
                  "batch's best learning rate (other lrs faint), and that lr; each seed is a point, a bar spans "
                  "the seeds where there are two or more, diverged runs are red crosses.",
    B_SIMPLE_SAMPLES_FIGURE: "The simple gradient noise scale B_simple = tr(Sigma)/|G|^2 as the runs measured it "
                             "(ratio of EMAs), against samples seen. It usually grows as training proceeds.",
    B_SIMPLE_LOSS_FIGURE: "B_simple against training loss: runs of different batch sizes compared at equal "
                          "progress rather than equal samples.",
    NOISE_FIT_FIGURE: "Windowed least-squares fit of E|g_b|^2 = |G|^2 + tr(Sigma) x(b) over micro-batch and "
                      "global norms, with bootstrap bands; an EMA-free check of B_simple.",
    STEPS_FIGURE: "Optimizer steps to the target per global batch, the S(B) = S_min + E_min/B fit, B_crit and "
                  "the median measured B_simple.",
    EXAMPLES_FIGURE: "Training samples to the target per global batch: flat (sample-efficient) below B_crit, "
                     "rising above it.",
    SHARPNESS_SAMPLES_FIGURE: "Sharpness, the top eigenvalue of the training loss's Hessian on a fixed subset, at "
                              "each evaluation that measured it, against samples seen; colour is the global batch, "
                              "each batch's best learning rate in full colour, the others faint.",
    SHARPNESS_BATCH_FIGURE: "Final sharpness (last measurement) per global batch at each batch's best learning rate, "
                            "each seed a point, with the fitted power law and its 90 % interval (left); the same "
                            "runs' final sharpness against their generalization gap at that evaluation, with "
                            "Spearman's rho (right).",
}

_STYLE: str = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; margin: 0 auto;
       max-width: 1120px; padding: 24px 32px 64px; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta { color: #666; font-size: 0.9em; margin-top: 0; }
#answers { background: #f3f7fc; border: 1px solid #c9d9ee; border-radius: 8px; padding: 4px 24px 12px; }
#answers h2 { border: none; margin-top: 0.8em; }
#answers dt { font-weight: 600; margin-top: 0.8em; }
#answers dd { margin: 0.2em 0 0 0; }
figure { margin: 1.2em 0 2em; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.92em; margin-top: 0.3em; }
.table-wrap { overflow-x: auto; margin: 0.6em 0 1.4em; }
table.data { border-collapse: collapse; font-size: 0.85em; }
table.data th, table.data td { border-bottom: 1px solid #e3e3e3; padding: 3px 7px; text-align: right; }
table.data th { background: #f5f5f5; vertical-align: bottom; font-weight: 600; }
table.data td { white-space: nowrap; }
table.data td:first-child, table.data th:first-child { text-align: left; }
.note { color: #555; font-size: 0.9em; }
"""


def write_report(
    runs: Iterable[Run],
    out: PathLike,
    target: Optional[Target] = None,
    figure_dir: Optional[PathLike] = None,
    sources: Sequence[PathLike] = (),
    refresh_s: Optional[float] = None,
    formats: Sequence[str] = ("png",),
) -> tuple[Path, list[Path]]:
    """Writes the report to `out`, answers.json beside it (docs/answers.md), and
    its figures (also kept as PNG files) to `figure_dir` (default: `figures/`
    beside the report). Returns (report, figures).

    `formats`: the figures are also written in these (plots.FORMATS, e.g.
    pdf, svg) beside the PNGs; the page embeds the PNGs.

    `refresh_s`: the page asks the browser to reload it after that many
    seconds (`report --refresh`, while the study runs). The page is written
    to a temporary file and renamed over `out`, so a browser never reads half
    of it."""
    runs = list(runs)
    out = Path(out)
    figure_dir = Path(figure_dir) if figure_dir is not None else out.parent / "figures"
    findings = compute_findings(runs, target)
    # PNG is always written: the page embeds it.
    formats = ("png",) + tuple(f for f in formats if f != "png")
    figures = plot_all(runs, figure_dir, findings.target, formats=formats)
    out.parent.mkdir(parents=True, exist_ok=True)
    answers = write_answers(runs, out.parent / ANSWERS_FILE, target)
    warnings = json.loads(answers.read_text(encoding="utf-8"))["warnings"]
    page = render_html(runs, findings, [f for f in figures if f.suffix == ".png"], sources, warnings, refresh_s=refresh_s)
    partial = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, out)
    return out, figures


def render_html(runs: list[Run], findings: Findings, figures: list[Path], sources: Sequence[PathLike] = (),
                warnings: Sequence[str] = (), refresh_s: Optional[float] = None) -> str:
    esc = html.escape
    score = findings.equal.score
    title = f"Batch-size study: {', '.join(findings.studies) or 'unnamed study'}"
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    where = ", ".join(str(s) for s in sources) or "run files"
    target = findings.target_note if findings.target is not None else f"none ({findings.target_note})"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">'
        + (f'<meta http-equiv="refresh" content="{refresh_s:g}">' if refresh_s is not None else ""),
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">{findings.runs} runs from {esc(where)}; {esc(model_summary(runs))}; '
        f"target: {esc(target)}; written {esc(when)} by batchscope-analysis {esc(__version__)}.</p>",
    ]
    parts += _answers_section(findings, warnings)

    parts.append('<section id="figures"><h2>Figures</h2>')
    for path in figures:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        caption = caption_for(path.name, score)
        parts.append(
            f'<figure id="{esc(path.stem)}"><img alt="{esc(path.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    parts.append("</section>")

    parts.append('<section id="tables"><h2>Tables</h2>')
    parts.append("<h3>Per global batch</h3>")
    parts.append(_html_table(batch_table(runs, findings)))
    best = "the best seed-mean accuracy" if score.higher_is_better else "the lowest seed-mean validation loss"
    parts.append(
        f'<p class="note">Equal-epoch columns: each batch at the base lr with {best}, at '
        f"epoch {findings.equal.epoch:.3g}. Steps/samples to target: the fewest over lrs and seeds. "
        "B_simple: each run re-smoothed from its raw norms over one window in samples for the study, median "
        "over the second half of its samples, then the median over the batch's runs.</p>"
    )
    parts.append("<h3>Steps to target, every run</h3>")
    if findings.target is not None:
        steps = findings.steps_table.sort_values(["global_batch", "base_lr", "seed", "run"], kind="stable")
        parts.append(_html_table(steps))
    else:
        parts.append(f'<p class="note">{esc(findings.target_note)}.</p>')
    parts.append("<h3>Runs</h3>")
    table, columns = with_folder_column(runs, runs_table(runs, findings.target), list(report_run_columns(score)))
    table = table.sort_values(["global_batch", "base_lr", "seed", "run"], kind="stable")
    parts.append(_html_table(table[columns]))
    queued = queued_runs(sources, runs)
    if queued:
        parts.append(f'<p class="note" id="queued">Queued (in study.yaml, no run file yet): {esc(", ".join(queued))}.</p>')
    caveat = buffers_note(runs)
    if caveat:
        parts.append(f'<p class="note" id="buffers">{esc(caveat)}</p>')
    parts.append("</section></body></html>")
    return "\n".join(parts)


def queued_runs(sources: Sequence[PathLike], runs: Sequence[Run]) -> list[str]:
    """Runs that a source folder's study.yaml lists and that have no run file
    among `runs` yet (a study still training, or stopped before them)."""
    from batchscope_analysis.watch import planned_runs  # watch reads study.yaml (optional PyYAML)

    have = {(run.path.parent.parent.resolve(), run.name) for run in runs}
    queued = []
    for source in sources:
        folder = Path(source)
        if folder.is_dir():
            queued += [p.name for p in planned_runs(folder)[1] if (folder.resolve(), p.name) not in have]
    return queued


def with_folder_column(runs: Sequence[Run], table: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """With runs from several output folders (several studies, or copies of
    one), a `folder` column after `study` says where each run's file is;
    `table` has one row per run, in `runs` order."""
    folders = [str(run.path.parent.parent) for run in runs]  # <output>/runs/<run>.h5
    if len(set(folders)) <= 1:
        return table, columns
    table = table.copy()
    table.insert(int(table.columns.get_loc("study")) + 1, "folder", folders)
    at = columns.index("study") + 1 if "study" in columns else 1
    return table, columns[:at] + ["folder"] + columns[at:]


def _answers_section(findings: Findings, warnings: Sequence[str]) -> list[str]:
    esc = html.escape
    parts = ['<section id="answers"><h2>Answers</h2><dl>']
    parts += [f"<dt>{esc(a.topic)}</dt><dd>{esc(a.text)}</dd>" for a in findings.answers]
    parts.append("</dl>")
    if warnings:
        # The same list as answers.json's "warnings": every caveat, in one place.
        parts.append('<h3 id="caveats">Caveats</h3><ul>')
        parts += [f"<li>{esc(w)}</li>" for w in warnings]
        parts.append("</ul>")
    parts.append(f'<p class="note">The answers as data: {ANSWERS_FILE} beside this page (docs/answers.md).</p>')
    parts.append("</section>")
    return parts


REPORT_RUN_COLUMNS: tuple[str, ...] = (
    "run", "global_batch", "ranks", "microbatches", "base_lr", "seed", "status", "steps", "final_val_acc",
    "best_val_acc", "gap", "steps_to_target", "samples_to_target", "b_simple_median", "b_simple_final",
    "samples_per_s",
)
# The runs table of a study of mse runs: losses in place of the accuracy columns.
REPORT_REGRESSION_RUN_COLUMNS: tuple[str, ...] = (
    "run", "global_batch", "ranks", "microbatches", "base_lr", "seed", "status", "steps", "final_val_loss",
    "best_val_loss", "loss_gap", "steps_to_target", "samples_to_target", "b_simple_median", "b_simple_final",
    "samples_per_s",
)


def report_run_columns(score: Score) -> tuple[str, ...]:
    return REPORT_REGRESSION_RUN_COLUMNS if score == LOSS else REPORT_RUN_COLUMNS


def caption_for(figure: str, score: Score = ACCURACY) -> str:
    if figure == FINAL_FIGURE and score == LOSS:
        return ("Final and lowest validation loss and the generalization gap (validation minus training loss) "
                "per global batch at each batch's best learning rate, and that lr; each seed is a point, a bar "
                "spans the seeds where there are two or more.")
    return CAPTIONS.get(figure, Path(figure).stem)


def model_summary(runs: list[Run]) -> str:
    """The models and losses of the runs in words, e.g. "model torchscript (mean squared error,
    init file)"; the built-in models' init is not mentioned."""
    kinds = sorted({(str(r.attrs.get("model", "?")), r.model_loss, r.model_init) for r in runs})
    parts = []
    for model, loss, init in kinds:
        loss_text = "mean squared error" if loss == LOSS_MSE else "cross-entropy"
        init_text = "" if init == "builtin" else f", init {init}"
        parts.append(f"{model} ({loss_text}{init_text})")
    if not parts:
        return "no model"
    return f"model{'s' if len(parts) != 1 else ''} " + "; ".join(parts)


def buffers_note(runs: list[Run]) -> str:
    """Which runs' models have buffers (BatchNorm running statistics) and what that changes; "" if none."""
    with_buffers = [r for r in runs if r.buffers]
    if not with_buffers:
        return ""
    names = sorted({name for r in with_buffers for name in r.buffers})
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    which = "All runs" if len(with_buffers) == len(runs) else (
        "Runs " + ", ".join(r.name for r in sorted(with_buffers, key=lambda r: r.name)))
    return (
        f"{which} train a model with buffers ({shown}): BatchNorm running statistics are kept per rank "
        "and averaged over the group's ranks, weighted by samples, before every evaluation and checkpoint. "
        "In training, each rank normalizes its own slice of the batch, so how a global batch is split over "
        "ranks (e.g. [16, 48] against [64]) changes the run: split invisibility does not hold for these runs."
    )


def batch_table(runs: list[Run], findings: Findings) -> pd.DataFrame:
    """One row per global batch joining the equal-epoch, final/best, target and noise numbers.

    Accuracy columns (equal_epoch_val_acc, final_val_acc, best_val_acc), or for
    a study of mse runs the loss ones (equal_epoch_val_loss, final_val_loss,
    best_val_loss: the lowest) and equal_epoch_loss_gap."""
    score = findings.equal.score
    col = score.column
    gap = f"equal_epoch_{score.gap}"  # equal_epoch_gap, or equal_epoch_loss_gap
    equal = findings.equal.by_batch.rename(columns={
        "base_lr": "best_lr", f"{col}_mean": f"equal_epoch_{col}", "gap_mean": gap, "seeds": "seeds",
    })[["global_batch", "best_lr", f"equal_epoch_{col}", gap, "seeds"]]
    final = final_by_batch(runs_table(runs), score)
    # The best over lrs: the highest accuracy, or the lowest loss.
    pick = "max" if score.higher_is_better else "min"
    final = final.groupby("global_batch").agg(**{
        f"final_{col}": (f"{col}_mean", pick), f"best_{col}": (f"best_{col}_mean", pick),
    }).reset_index()
    steps = findings.steps_best[["global_batch", "steps_to_target", "samples_to_target", "reached", "runs"]]
    noise = findings.noise_per_batch[["global_batch", "b_simple_median"]]
    table = pd.DataFrame({"global_batch": sorted({r.global_batch for r in runs})})
    for part in (equal, final, steps, noise):
        part = part.astype({"global_batch": "int64"})
        table = table.merge(part, on="global_batch", how="left")
    return table


_HEADERS: dict[str, str] = {
    "microbatches": "micro- batches",
    "samples_per_s": "samples /s",
    "b_simple_median": "B_simple median",
    "b_simple_final": "B_simple final",
}


def _html_table(table: pd.DataFrame) -> str:
    formatters = {column: _formatter(column) for column in table.columns}
    body = table.to_html(index=False, classes="data", border=0, na_rep="–", formatters=formatters, escape=True)
    # Header names with spaces can wrap, which keeps wide tables on the page;
    # the underscore names stay as they are in summary and the Python API.
    for column in table.columns:
        shown = _HEADERS.get(str(column), str(column).replace("_", " "))
        body = body.replace(f"<th>{html.escape(str(column))}</th>", f"<th>{html.escape(shown)}</th>")
    return f'<div class="table-wrap">{body}</div>'


def _formatter(column: str) -> Callable[[object], str]:
    def number(fmt: str) -> Callable[[object], str]:
        def apply(value: object) -> str:
            if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
                return "–"
            if isinstance(value, list):
                return ", ".join("–" if not math.isfinite(v) else f"{v:.0f}" for v in value)
            return fmt.format(value)
        return apply

    if "loss" in column:
        return number("{:.4g}")  # mse losses span decades
    if "acc" in column or column.endswith("gap"):
        return number("{:.4f}")
    if column in ("steps_to_target", "samples_to_target"):
        return number("{:.0f}")
    if column.startswith("b_simple") or column == "samples_per_s":
        return number("{:.1f}")
    if column in ("base_lr", "best_lr"):
        return number("{:g}")
    return lambda value: str(value)
