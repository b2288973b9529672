"""Command line: `batchscope-analysis {report,answers,plot,summary,tensorboard,check,watch}`.

Bad input (missing path, no run files, unreadable file) ends with a one-line
message naming the path and exit code 2, the same code argparse uses for
usage errors, so scripts can tell it apart from `check` finding problems (1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import pandas as pd

from batchscope_analysis import __version__
from batchscope_analysis.answers import ANSWERS_FILE, compute_answers, write_answers
from batchscope_analysis.errors import RunFileError
from batchscope_analysis.load import (
    REGRESSION_TABLE_COLUMNS, RUNS_TABLE_COLUMNS, Run, find_runs, load_run, load_study, runs_table,
)
from batchscope_analysis.plots import DEFAULT_FORMATS, parse_formats, plot_all
from batchscope_analysis.report import buffers_note, with_folder_column, write_report
from batchscope_analysis.schema import check_run_file
from batchscope_analysis.score import LOSS, Score, study_score
from batchscope_analysis.target import Target, parse_target, study_target
from batchscope_analysis.tensorboard import DEFAULT_MAX_POINTS, write_tensorboard
from batchscope_analysis.watch import DEFAULT_INTERVAL_S, snapshot, watch

PROG: str = "batchscope-analysis"
EXIT_OK: int = 0
EXIT_PROBLEMS: int = 1
EXIT_BAD_INPUT: int = 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.func
    try:
        return command(args)
    except RunFileError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        # e.g. a figure folder that cannot be created.
        where = exc.filename if exc.filename is not None else "?"
        print(f"{PROG}: error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Check, summarise and plot batchscope run files.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    report = commands.add_parser("report", help="write one self-contained HTML report: answers, figures, tables")
    report.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="study output folder or run file")
    report.add_argument("--out", type=Path, metavar="FILE.html", help="report file (default: first DIR/report.html)")
    report.add_argument("--refresh", type=_seconds_arg, metavar="SECONDS",
                        help="rewrite the page every SECONDS while a run of the first DIR's study is still "
                             "running, with a meta refresh so a browser reloads it; ends after the last rewrite")
    _add_target_option(report)
    _add_format_option(report)
    report.set_defaults(func=_report)

    answers = commands.add_parser("answers", help="write answers.json: the report's answers as data (docs/answers.md)")
    answers.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="study output folder or run file")
    answers.add_argument("--out", type=Path, metavar="FILE.json",
                         help="answers file, or - for standard output (default: first DIR/answers.json)")
    _add_target_option(answers)
    answers.set_defaults(func=_answers)

    plot = commands.add_parser("plot", help="write figures (PNG; --format png,pdf,svg) of one or more studies")
    plot.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="study output folder or run file")
    plot.add_argument("--out", type=Path, metavar="FIGDIR", help="figure folder (default: first DIR/figures)")
    _add_target_option(plot)
    _add_format_option(plot)
    plot.set_defaults(func=_plot)

    summary = commands.add_parser("summary", help="print one line per run")
    summary.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="study output folder or run file")
    summary.add_argument("--csv", action="store_true",
                         help="CSV instead of aligned text (missing values empty, as in the binary's summary.csv)")
    _add_target_option(summary)
    summary.set_defaults(func=_summary)

    board = commands.add_parser("tensorboard", help="write TensorBoard event files (x = samples trained), one folder per run")
    board.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="study output folder or run file")
    board.add_argument("--out", type=Path, required=True, help="folder for `tensorboard --logdir`")
    board.add_argument("--max-points", type=int, default=DEFAULT_MAX_POINTS,
                       help=f"per-step scalars kept per run, evenly thinned (default {DEFAULT_MAX_POINTS})")
    board.set_defaults(func=_tensorboard)

    check = commands.add_parser("check", help="check run files against the schema")
    check.add_argument("paths", nargs="+", type=Path, metavar="FILE_OR_DIR")
    check.set_defaults(func=_check)

    live = commands.add_parser("watch", help="a live terminal view of a study while it trains, until it ends")
    live.add_argument("dir", type=Path, metavar="DIR", help="study output folder")
    live.add_argument("--interval", type=_seconds_arg, default=DEFAULT_INTERVAL_S, metavar="SECONDS",
                      help=f"seconds between refreshes (default {DEFAULT_INTERVAL_S:g})")
    live.add_argument("--once", action="store_true", help="print one snapshot and exit")
    live.set_defaults(func=_watch)
    return parser


def _seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, not {text!r}")
    return value


def _add_target_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", type=_target_arg, metavar="METRIC=VALUE",
        help="target for steps-to-target, e.g. val_error=0.15 (metrics: val_error, val_acc, val_loss, "
             "train_error, train_acc, train_loss); default: the target stored in the run files",
    )


def _target_arg(text: str) -> Target:
    # argparse turns this into a usage error (exit 2) naming the option.
    try:
        return parse_target(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _report(args: argparse.Namespace) -> int:
    out: Path = args.out if args.out is not None else _study_root(args.dirs[0]) / "report.html"
    if args.refresh is not None:
        return _refreshing_report(args, out)
    runs = load_study(args.dirs)
    report, figures = write_report(runs, out, args.target, sources=args.dirs, formats=args.formats)
    for path in figures:
        print(path)
    print(report.parent / ANSWERS_FILE)
    print(report)
    return EXIT_OK


def _refreshing_report(args: argparse.Namespace, out: Path) -> int:
    """`report --refresh SECONDS`: rewrites the page while the first DIR's study runs.

    Each rewrite asks the browser to reload after SECONDS (a meta refresh);
    the one written after the study ended does not, and ends the command.
    Run files that cannot be read yet (being created) wait for the next round.
    """
    study = _study_root(args.dirs[0])
    while True:
        # Looked at before the files are read: a study that ends meanwhile gets one more rewrite.
        ended = snapshot(study).finished
        runs = _readable_runs(args.dirs)
        if runs:
            write_report(runs, out, args.target, sources=args.dirs, refresh_s=None if ended else args.refresh,
                         formats=args.formats)
            print(f"{time.strftime('%H:%M:%S')} {out} ({len(runs)} runs{'' if ended else ', running'})", flush=True)
        if ended:
            return EXIT_OK
        time.sleep(args.refresh)


def _readable_runs(dirs: Sequence[Path]) -> list[Run]:
    """The run files under `dirs` that can be read now; none while no run has started."""
    runs = []
    try:
        paths = find_runs(dirs)
    except RunFileError:
        if all(Path(d).is_dir() for d in dirs):
            return []  # no run file yet: the study has not started a run
        raise
    for path in paths:
        try:
            run = load_run(path)
        except RunFileError:
            continue  # the writer is creating it
        if len(run.train):
            runs.append(run)
    return runs


def _answers(args: argparse.Namespace) -> int:
    runs = load_study(args.dirs)
    if args.out is not None and str(args.out) == "-":
        print(json.dumps(compute_answers(runs, args.target), indent=2, allow_nan=False))
        return EXIT_OK
    out: Path = args.out if args.out is not None else _study_root(args.dirs[0]) / ANSWERS_FILE
    print(write_answers(runs, out, args.target))
    return EXIT_OK


def _plot(args: argparse.Namespace) -> int:
    runs = load_study(args.dirs)
    out: Path = args.out if args.out is not None else _default_figure_dir(args.dirs[0])
    for path in plot_all(runs, out, args.target, formats=args.formats):
        print(path)
    return EXIT_OK


def _add_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", dest="formats", type=_formats_arg, default=DEFAULT_FORMATS, metavar="png,pdf,svg",
                        help="figure file formats, a comma list (default: png; the report always writes and "
                             "embeds png, the others beside it)")


def _formats_arg(text: str) -> tuple[str, ...]:
    try:
        return parse_formats(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _default_figure_dir(first: Path) -> Path:
    return _study_root(first) / "figures"


def _study_root(first: Path) -> Path:
    if first.is_dir():
        return first
    # A run file inside <output>/runs/ belongs to the study at <output>.
    parent = first.parent
    return parent.parent if parent.name == "runs" else parent


# What `summary` prints: the runs table without the columns that repeat
# (study, peak lr, losses) so a line fits a wide terminal.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "run", "study", "global_batch", "ranks", "microbatches", "base_lr", "seed", "status", "steps", "final_val_acc",
    "best_val_acc", "gap", "steps_to_target", "b_simple_median", "b_simple_final", "samples_per_s",
)
# A study of mse runs has no accuracy: losses take the accuracy columns' place.
REGRESSION_SUMMARY_COLUMNS: tuple[str, ...] = (
    "run", "study", "global_batch", "ranks", "microbatches", "base_lr", "seed", "status", "steps", "final_val_loss",
    "best_val_loss", "loss_gap", "steps_to_target", "b_simple_median", "b_simple_final", "samples_per_s",
)


def summary_columns(score: Score) -> tuple[str, ...]:
    return REGRESSION_SUMMARY_COLUMNS if score == LOSS else SUMMARY_COLUMNS


def _summary(args: argparse.Namespace) -> int:
    runs = load_study(args.dirs)
    target, note = study_target(runs, args.target)
    # A --target the runs cannot meet (accuracy of mse runs) is still what
    # was asked: its steps are "-", not those of the runs' own targets.
    table = runs_table(runs, target if args.target is None else args.target)
    table, columns = with_folder_column(runs, table, list(summary_columns(study_score(runs))))
    table = table.sort_values(["global_batch", "base_lr", "seed", "run"], kind="stable")
    if args.csv:
        print(table[columns].to_csv(index=False, na_rep="", float_format="%.10g"), end="")
        return EXIT_OK
    print(format_table(table[columns]))
    print(f"steps_to_target: first evaluated step with {target.describe()}" if target is not None
          else f"steps_to_target: {note}")
    caveat = buffers_note(runs)
    if caveat:
        print(f"note: {caveat}")
    return EXIT_OK


def format_table(table: pd.DataFrame) -> str:
    """Aligned text, with precision chosen per column so lrs and rates stay readable."""
    four = "{:.4f}".format

    whole, one = "{:.0f}".format, "{:.1f}".format
    formatters = {
        "base_lr": "{:g}".format,
        "peak_lr": "{:g}".format,
        "target_value": "{:g}".format,
        "samples_per_s": one,
        "steps_to_target": whole,
        "samples_to_target": whole,
        "b_simple_final": one,
        "b_simple_median": one,
        **{name: four for name in RUNS_TABLE_COLUMNS if "acc" in name or name == "gap"},
        # Four significant digits: mse losses span decades (0.0001234 .. 1234).
        **{name: "{:.4g}".format for name in REGRESSION_TABLE_COLUMNS if "loss" in name},
    }
    # NaN (target not reached, no noise estimate, diverged) prints as "-".
    text: str = table.to_string(
        index=False, na_rep="-", formatters={k: v for k, v in formatters.items() if k in table.columns}
    )
    return text


def _tensorboard(args: argparse.Namespace) -> int:
    if args.max_points < 2:
        print(f"{PROG}: error: --max-points must be >= 2", file=sys.stderr)
        return EXIT_BAD_INPUT
    paths = write_tensorboard(load_study(args.dirs), args.out, args.max_points)
    print(f"{len(paths)} event files under {args.out}: tensorboard --logdir {args.out}")
    return EXIT_OK


def _watch(args: argparse.Namespace) -> int:
    try:
        return watch(args.dir, args.interval, args.once)
    except KeyboardInterrupt:
        return 130


def _check(args: argparse.Namespace) -> int:
    files = find_runs(args.paths)
    bad = 0
    for path in files:
        problems = check_run_file(path)
        if problems:
            bad += 1
            for problem in problems:
                print(f"{path}: {problem}")
    if bad:
        print(f"{bad} of {len(files)} run files have problems")
        return EXIT_PROBLEMS
    print(f"{len(files)} run files OK")
    return EXIT_OK
