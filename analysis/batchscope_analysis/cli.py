"""Command line: `batchscope-analysis {plot,summary,check}`.

Bad input (missing path, no run files, unreadable file) ends with a one-line
message naming the path and exit code 2, the same code argparse uses for
usage errors, so scripts can tell it apart from `check` finding problems (1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import pandas as pd

from batchscope_analysis import __version__
from batchscope_analysis.errors import RunFileError
from batchscope_analysis.load import RUNS_TABLE_COLUMNS, find_runs, load_study, runs_table
from batchscope_analysis.plots import plot_final_vs_batch, plot_loss_vs_samples
from batchscope_analysis.schema import check_run_file

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

    plot = commands.add_parser("plot", help="write figures (PNG) of one or more studies")
    plot.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="study output folder or run file")
    plot.add_argument("--out", type=Path, metavar="FIGDIR", help="figure folder (default: first DIR/figures)")
    plot.set_defaults(func=_plot)

    summary = commands.add_parser("summary", help="print one line per run")
    summary.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="study output folder or run file")
    summary.set_defaults(func=_summary)

    check = commands.add_parser("check", help="check run files against the schema")
    check.add_argument("paths", nargs="+", type=Path, metavar="FILE_OR_DIR")
    check.set_defaults(func=_check)
    return parser


def _plot(args: argparse.Namespace) -> int:
    runs = load_study(args.dirs)
    out: Path = args.out if args.out is not None else _default_figure_dir(args.dirs[0])
    for path in plot_loss_vs_samples(runs, out) + plot_final_vs_batch(runs, out):
        print(path)
    return EXIT_OK


def _default_figure_dir(first: Path) -> Path:
    if first.is_dir():
        return first / "figures"
    # A run file inside <output>/runs/ belongs to the study at <output>.
    parent = first.parent
    return (parent.parent if parent.name == "runs" else parent) / "figures"


def _summary(args: argparse.Namespace) -> int:
    table = runs_table(load_study(args.dirs))
    table = table.sort_values(["global_batch", "base_lr", "seed", "run"], kind="stable")
    print(format_table(table))
    return EXIT_OK


def format_table(table: pd.DataFrame) -> str:
    """Aligned text, with precision chosen per column so lrs and rates stay readable."""
    four = "{:.4f}".format
    formatters = {
        "base_lr": "{:g}".format,
        "peak_lr": "{:g}".format,
        "samples_per_s": "{:.1f}".format,
        **{name: four for name in RUNS_TABLE_COLUMNS if "acc" in name or "loss" in name or name == "gap"},
    }
    return table.to_string(index=False, formatters=formatters)


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
