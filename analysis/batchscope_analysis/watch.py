"""`batchscope-analysis watch DIR`: a live terminal view of a study while it trains.

Each refresh opens every run file read-only over SWMR, reads the few rows it
needs, and closes it again, so the writer is never held up or disturbed
(docs/run-file.md, "Reading while a run trains"). The full list of runs,
with each run's planned steps, comes from `<output>/study.yaml`: runs without
a file yet are shown as queued.

The job has ended when no run is running and either none is queued or
`summary.csv` is at least as new as `study.yaml` (the binary writes
study.yaml when a job starts and summary.csv when it ends, also after a
preemption that leaves runs unstarted).
"""

from __future__ import annotations

import datetime as dt
import importlib
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, TextIO

import h5py
import numpy as np
import numpy.typing as npt

from batchscope_analysis.errors import RunFileError
from batchscope_analysis.status import status_name

QUEUED: str = "queued"
# A file that exists but cannot be read yet: the writer is creating it.
STARTING: str = "starting"
RUNNING: str = "running"
# Statuses after which a run writes nothing more (status.STATUS_NAMES 1..4).
ENDED: frozenset[str] = frozenset({"completed", "diverged", "failed", "preempted"})

STUDY_FILE: str = "study.yaml"
SUMMARY_FILE: str = "summary.csv"
CLEAR_SCREEN: str = "\x1b[H\x1b[2J"
SPARK_BLOCKS: str = "▁▂▃▄▅▆▇█"
SPARK_ASCII: str = "_.-=+*#@"
SPARK_POINTS: int = 20  # sparkline width: bucket means of the last SPARK_ROWS losses
SPARK_ROWS: int = 200
ACC_POINTS: int = 8  # the validation sparkline: the last evaluations
OPEN_TRIES: int = 5  # a file the writer is still creating fails to open for a moment
OPEN_RETRY_S: float = 0.05
DEFAULT_INTERVAL_S: float = 5.0


@dataclass(frozen=True)
class PlannedRun:
    """A run as study.yaml lists it."""

    name: str
    global_batch: int
    total_steps: int


@dataclass(frozen=True)
class RunView:
    """What the view shows of one run; NaN where not known (yet)."""

    name: str
    status: str
    step: int = 0
    total_steps: int = 0
    global_batch: int = 0
    losses: tuple[float, ...] = ()  # recent training losses, bucket means, oldest first
    loss: float = math.nan
    val_scores: tuple[float, ...] = ()  # recent validation accuracies (validation losses for mse runs)
    has_accuracy: bool = True
    samples_per_s: float = math.nan
    seconds_per_step: float = math.nan

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def active(self) -> bool:
        return self.status in (RUNNING, STARTING)

    @property
    def remaining_steps(self) -> int:
        return max(0, self.total_steps - self.step) if not self.ended else 0

    @property
    def eta_s(self) -> float:
        if self.ended:
            return 0.0
        return self.remaining_steps * self.seconds_per_step if self.status == RUNNING else math.nan


@dataclass(frozen=True)
class Snapshot:
    study: str
    folder: Path
    taken: dt.datetime
    runs: tuple[RunView, ...]
    job_ended: bool  # summary.csv written after the latest study.yaml

    def count(self, *statuses: str) -> int:
        return sum(1 for r in self.runs if r.status in statuses)

    @property
    def done(self) -> int:
        return sum(1 for r in self.runs if r.ended)

    @property
    def running(self) -> int:
        return self.count(RUNNING, STARTING)

    @property
    def queued(self) -> int:
        return self.count(QUEUED)

    @property
    def finished(self) -> bool:
        """Nothing runs, and nothing queued will: the watch can stop."""
        return self.running == 0 and (self.queued == 0 or self.job_ended)

    @property
    def rate(self) -> float:
        """Samples per second of the study now: the sum over the runs training."""
        rates = [r.samples_per_s for r in self.runs if r.status == RUNNING and math.isfinite(r.samples_per_s)]
        return float(sum(rates)) if rates else math.nan

    @property
    def eta_s(self) -> float:
        """Samples left over the runs still to train, at the study's current rate."""
        if self.finished:
            return 0.0
        left = sum(r.remaining_steps * r.global_batch for r in self.runs if not r.ended)
        rate = self.rate
        return left / rate if rate > 0 else math.nan


# ---------------------------------------------------------------- reading


def planned_runs(folder: Path) -> tuple[str, list[PlannedRun]]:
    """(study name, runs) from `folder/study.yaml`; ("", []) when there is none or it lists no runs.

    Planned steps follow run_budget (src/config/study.cpp): budget.steps, or
    max(1, floor(budget.epochs * floor(train_size / global_batch))).
    """
    path = folder / STUDY_FILE
    if not path.is_file():
        return "", []
    try:
        # PyYAML (Debian's python3-yaml) is optional: without it, the runs come from the files.
        yaml: Any = importlib.import_module("yaml")
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (ImportError, OSError, ValueError):
        return "", []
    except Exception:  # yaml.YAMLError: a file being written, or not a study
        return "", []
    if not isinstance(doc, dict):
        return "", []
    name = str(doc.get("study", doc.get("name", "")))
    return name, [p for p in (_planned(item, doc) for item in doc.get("runs") or []) if p is not None]


def _planned(item: Any, doc: dict[str, Any]) -> Optional[PlannedRun]:
    if not isinstance(item, dict) or "name" not in item:
        return None
    batch = item.get("batch", [])
    global_batch = int(sum(batch)) if isinstance(batch, list) else int(batch or 0)
    budget = doc.get("budget") or {}
    train_size = int((doc.get("data") or {}).get("train_size", 0) or 0)
    steps = int(budget.get("steps", 0) or 0)
    if steps <= 0 and global_batch > 0:
        steps = max(1, math.floor(float(budget.get("epochs", 0) or 0) * (train_size // global_batch)))
    return PlannedRun(name=str(item["name"]), global_batch=global_batch, total_steps=steps)


def read_run_view(path: Path, planned: Optional[PlannedRun] = None, tries: int = OPEN_TRIES) -> RunView:
    """One run file, opened read-only (SWMR), read and closed; STARTING when it cannot be read yet."""
    for attempt in range(max(1, tries)):
        for swmr in (True, False):  # files without the latest format open only without SWMR
            try:
                with h5py.File(path, "r", swmr=swmr) as f:
                    return _view_of(f, path.stem, planned)
            except (OSError, KeyError, ValueError, IndexError):
                continue
        if attempt + 1 < tries:
            time.sleep(OPEN_RETRY_S)
    return _starting(path.stem, planned)


def _starting(name: str, planned: Optional[PlannedRun]) -> RunView:
    if planned is None:
        return RunView(name=name, status=STARTING)
    return RunView(name=name, status=STARTING, total_steps=planned.total_steps, global_batch=planned.global_batch)


def _tail(f: h5py.File, name: str, rows: Optional[int] = None) -> npt.NDArray[np.float64]:
    """The last `rows` values of a dataset (all when None), after refresh()."""
    ds = f[name]
    if f.swmr_mode:
        ds.refresh()
    n = int(ds.shape[0])
    lo = 0 if rows is None else max(0, n - rows)
    return np.asarray(ds[lo:n], dtype=np.float64)


def _view_of(f: h5py.File, fallback_name: str, planned: Optional[PlannedRun]) -> RunView:
    attrs = f.attrs
    name = _text(attrs.get("run", fallback_name))
    status = status_name(int(_tail(f, "status/code")[0]))
    # /train columns can differ by a flush while the run trains: align on the shortest.
    step_col = _tail(f, "train/step", SPARK_ROWS)
    samples = _tail(f, "train/samples", SPARK_ROWS)
    wall = _tail(f, "train/wall_s", SPARK_ROWS)
    loss = _tail(f, "train/loss", SPARK_ROWS)
    rows = min(len(step_col), len(samples), len(wall), len(loss))
    has_accuracy = _text(attrs.get("model_loss", "cross_entropy")) != "mse"
    val = _tail(f, "eval/val_acc" if has_accuracy else "eval/val_loss", ACC_POINTS)
    total = int(attrs["total_steps"]) if "total_steps" in attrs else (planned.total_steps if planned else 0)
    batch = int(attrs["global_batch"]) if "global_batch" in attrs else (planned.global_batch if planned else 0)
    view = RunView(name=name, status=status, total_steps=total, global_batch=batch, has_accuracy=has_accuracy,
                   val_scores=tuple(float(v) for v in val if math.isfinite(v)))
    if rows == 0:
        return view
    # Use the newest row every column has.
    step, done, seconds = int(step_col[rows - 1]), float(samples[rows - 1]), float(wall[rows - 1])
    return RunView(
        name=view.name, status=view.status, step=step, total_steps=total, global_batch=batch,
        losses=bucket_means(loss[:rows], SPARK_POINTS), loss=float(loss[rows - 1]), val_scores=view.val_scores,
        has_accuracy=has_accuracy,
        samples_per_s=done / seconds if seconds > 0 else math.nan,
        seconds_per_step=seconds / step if step > 0 and seconds > 0 else math.nan,
    )


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def bucket_means(values: npt.NDArray[np.float64], points: int) -> tuple[float, ...]:
    """`values` cut into at most `points` consecutive buckets, each its mean (NaN if it has no finite value)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return ()
    out = []
    for chunk in np.array_split(values, min(points, values.size)):
        finite = chunk[np.isfinite(chunk)]
        out.append(float(finite.mean()) if finite.size else math.nan)
    return tuple(out)


def run_files(folder: Path) -> list[Path]:
    return sorted(p for p in (folder / "runs").glob("*.h5") if p.is_file())


def snapshot(folder: Path, tries: int = OPEN_TRIES) -> Snapshot:
    """The study in `folder` now: every run of study.yaml (queued ones without a file) and every run file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunFileError(folder, "no such study folder")
    study, planned = planned_runs(folder)
    files = {p.stem: p for p in run_files(folder)}
    if not planned and not files:
        raise RunFileError(folder, f"no {STUDY_FILE} and no run files (runs/*.h5)")
    views: list[RunView] = []
    for plan in planned:
        path = files.pop(plan.name, None)
        if path is None:
            views.append(RunView(name=plan.name, status=QUEUED, total_steps=plan.total_steps,
                                 global_batch=plan.global_batch))
        else:
            views.append(read_run_view(path, plan, tries))
    # Files study.yaml does not list (another study's, or no study.yaml): shown after the planned runs.
    views += [read_run_view(path, None, tries) for path in files.values()]
    if not study:
        study = _study_from_files(list(files.values()) or run_files(folder))
    return Snapshot(study=study or folder.name, folder=folder, taken=dt.datetime.now(),
                    runs=tuple(views), job_ended=_job_ended(folder))


def _study_from_files(paths: Sequence[Path]) -> str:
    for path in paths[:1]:
        try:
            with h5py.File(path, "r", swmr=True) as f:
                return _text(f.attrs.get("study", ""))
        except (OSError, KeyError):
            return ""
    return ""


def _job_ended(folder: Path) -> bool:
    summary, study = folder / SUMMARY_FILE, folder / STUDY_FILE
    try:
        return not study.exists() or summary.stat().st_mtime_ns >= study.stat().st_mtime_ns
    except OSError:
        return False


# ---------------------------------------------------------------- rendering


def sparkline(values: Sequence[float], blocks: str = SPARK_BLOCKS) -> str:
    """One character per value, scaled between the finite minimum and maximum; a space for NaN."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return " " * len(values)
    lo, hi = min(finite), max(finite)
    top = len(blocks) - 1
    out = []
    for v in values:
        if not math.isfinite(v):
            out.append(" ")
        elif hi == lo:
            out.append(blocks[top // 2])
        else:
            out.append(blocks[int(round((v - lo) / (hi - lo) * top))])
    return "".join(out)


def format_duration(seconds: float) -> str:
    """`?` when unknown, else e.g. `42s`, `3m05s`, `2h07m`."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _number(value: float, fmt: str) -> str:
    return fmt.format(value) if math.isfinite(value) else "-"


def render(snap: Snapshot, width: int = 100, blocks: str = SPARK_BLOCKS, interval_s: Optional[float] = None) -> list[str]:
    """The view as lines of at most `width` characters: a title, a header, one line per run, the study line."""
    every = f"  every {interval_s:g} s" if interval_s is not None else ""
    title = f"{snap.study}  {snap.folder}  {snap.taken:%Y-%m-%d %H:%M:%S}{every}"
    name_w = min(32, max([3] + [len(r.name) for r in snap.runs]))
    spark_w = SPARK_POINTS if width >= 100 else max(0, min(SPARK_POINTS, width - 80))
    acc_w = ACC_POINTS if width >= 90 else 0
    accuracy = all(r.has_accuracy for r in snap.runs)
    header = (f"{'run':<{name_w}} {'status':<9} {'step/steps':>15} {'loss':>8} {'':<{spark_w}} "
              f"{'val_acc' if accuracy else 'val':>8} {'':<{acc_w}} {'samples/s':>10} {'ETA':>7}")
    lines = [title, header.rstrip()]
    for run in snap.runs:
        lines.append(_run_line(run, name_w, spark_w, acc_w, blocks))
    lines.append(_study_line(snap))
    return [line[:width] for line in lines]


def _run_line(run: RunView, name_w: int, spark_w: int, acc_w: int, blocks: str) -> str:
    name = run.name if len(run.name) <= name_w else run.name[: name_w - 1] + "~"
    total = run.total_steps if run.total_steps > 0 else "?"
    steps = f"{run.step}/{total}"
    if run.total_steps > 0 and run.status != QUEUED:
        steps += f" {100.0 * run.step / run.total_steps:3.0f}%"
    spark = sparkline(run.losses[-spark_w:], blocks) if spark_w else ""
    if run.val_scores:
        val = f"{run.val_scores[-1]:.4f}" if run.has_accuracy else f"{run.val_scores[-1]:.4g}"
    else:
        val = "-"
    acc_spark = sparkline(run.val_scores[-acc_w:], blocks) if acc_w else ""
    rate = _number(run.samples_per_s, "{:.0f}")
    eta = "-" if run.ended else format_duration(run.eta_s)
    line = (f"{name:<{name_w}} {run.status:<9} {steps:>15} {_number(run.loss, '{:.4f}'):>8} {spark:<{spark_w}} "
            f"{val:>8} {acc_spark:<{acc_w}} {rate:>10} {eta:>7}")
    return line.rstrip()


def _study_line(snap: Snapshot) -> str:
    counts = f"study: {snap.done} done / {snap.running} running / {snap.queued} queued"
    ended = [r.status for r in snap.runs if r.ended and r.status != "completed"]
    if ended:
        counts += " (" + ", ".join(f"{ended.count(s)} {s}" for s in sorted(set(ended))) + ")"
    if snap.finished:
        left = f"; {snap.queued} never started" if snap.queued else ""
        return f"{counts}; study ended{left}"
    eta = snap.eta_s
    rate = snap.rate
    if not math.isfinite(eta):
        return f"{counts}; ETA ?"
    return f"{counts}; {rate:.0f} samples/s; ETA {format_duration(eta)}"


# ---------------------------------------------------------------- the loop


def spark_blocks_for(stream: TextIO) -> str:
    """Unicode blocks when the stream can encode them (a UTF-8 terminal), else ASCII."""
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        SPARK_BLOCKS.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return SPARK_ASCII
    return SPARK_BLOCKS


def watch(folder: Path, interval_s: float = DEFAULT_INTERVAL_S, once: bool = False,
          out: Optional[TextIO] = None) -> int:
    """Prints a snapshot every `interval_s` seconds until the study has ended (or once); returns 0.

    On a terminal each snapshot replaces the last (ANSI clear screen); into a
    pipe or a file they follow one another, separated by a blank line.
    """
    stream = out if out is not None else sys.stdout
    tty = stream.isatty()
    blocks = spark_blocks_for(stream)
    first = True
    while True:
        snap = snapshot(folder)
        width = shutil.get_terminal_size((100, 24)).columns if tty else 120
        text = "\n".join(render(snap, width, blocks, None if once else interval_s))
        if tty:
            stream.write(CLEAR_SCREEN + text + "\n")
        else:
            stream.write(("" if first else "\n") + text + "\n")
        stream.flush()
        first = False
        if once or snap.finished:
            return 0
        time.sleep(interval_s)
