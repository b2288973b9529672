"""`watch` (the live terminal view) and `report --refresh`: on synthetic run files, and on a real study
held mid-run with BATCHSCOPE_HOLD_AT_STEP (read over SWMR while its writer has the file open)."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
from synthetic_runs import EPOCHS, STUDY_SPECS, TRAIN_SIZE, RunSpec, write_run_file

from batchscope_analysis.cli import main
from batchscope_analysis.load import load_study
from batchscope_analysis.report import write_report
from batchscope_analysis.watch import (
    QUEUED, SPARK_ASCII, SPARK_BLOCKS, STARTING, format_duration, planned_runs, read_run_view, render, snapshot,
    sparkline, watch,
)

REPO: Path = Path(__file__).resolve().parents[2]
ANALYSIS_DIR: Path = REPO / "analysis"
META: str = '<meta http-equiv="refresh"'

DONE = next(s for s in STUDY_SPECS if s.name == "b64-s0")
LIVE = next(s for s in STUDY_SPECS if s.status == "running")  # b64-s2-live: 23 steps written
QUEUED_RUN = ("b512-queued", (256, 256))  # only in study.yaml


def _study_yaml(runs: list[tuple[str, tuple[int, ...]]]) -> str:
    """A study.yaml as the binary writes it (the parts watch reads)."""
    lines = ["study: synthetic", "data:", "  name: synthetic", f"  train_size: {TRAIN_SIZE}", "budget:",
             f"  epochs: {EPOCHS}", "runs:"]
    lines += [f"  - {{name: {name}, batch: [{', '.join(map(str, batch))}], lr: 0.1, seed: 0}}" for name, batch in runs]
    return "\n".join(lines) + "\n"


def _write(root: Path, specs: tuple[RunSpec, ...], queued: tuple[tuple[str, tuple[int, ...]], ...] = ()) -> Path:
    (root / "runs").mkdir(parents=True)
    for spec in specs:
        write_run_file(root / "runs" / f"{spec.name}.h5", spec)
    (root / "study.yaml").write_text(_study_yaml([(s.name, s.batch_per_rank) for s in specs] + list(queued)))
    return root


@pytest.fixture
def live_study(tmp_path: Path) -> Path:
    """One completed run, one still running (23 of 128 steps), one queued (no file yet)."""
    return _write(tmp_path / "study", (DONE, LIVE), (QUEUED_RUN,))


def _line(lines: list[str], run: str) -> str:
    return next(line for line in lines if line.split()[0] == run)


def test_planned_steps_follow_run_budget(live_study: Path) -> None:
    study, planned = planned_runs(live_study)
    assert study == "synthetic"
    steps = {p.name: (p.global_batch, p.total_steps) for p in planned}
    # epochs x floor(train_size / B), as run_budget plans it.
    assert steps == {DONE.name: (64, DONE.total_steps), LIVE.name: (64, LIVE.total_steps),
                     "b512-queued": (512, EPOCHS * (TRAIN_SIZE // 512))}
    (live_study / "study.yaml").write_text(
        _study_yaml([("b512-queued", (256, 256))]).replace(f"  epochs: {EPOCHS}", "  steps: 77"))
    assert [p.total_steps for p in planned_runs(live_study)[1]] == [77]


def test_snapshot_of_a_study_still_training(live_study: Path) -> None:
    snap = snapshot(live_study)
    runs = {r.name: r for r in snap.runs}
    assert [r.name for r in snap.runs] == [DONE.name, LIVE.name, "b512-queued"]  # study.yaml's order
    assert runs[DONE.name].status == "completed" and runs[DONE.name].step == DONE.total_steps
    live = runs[LIVE.name]
    assert (live.status, live.step, live.total_steps, live.global_batch) == ("running", 23, LIVE.total_steps, 64)
    assert 0 < len(live.losses) <= 20 and live.val_scores and live.val_scores[-1] > 0.1
    # Synthetic wall time: 0.01 s per step at B=32, times sqrt(B/32).
    assert live.samples_per_s == pytest.approx(64 / (0.01 * 2 ** 0.5))
    assert live.eta_s == pytest.approx((LIVE.total_steps - 23) * 0.01 * 2 ** 0.5)
    queued = runs["b512-queued"]
    assert (queued.status, queued.step, queued.total_steps) == (QUEUED, 0, EPOCHS * (TRAIN_SIZE // 512))
    assert (snap.done, snap.running, snap.queued) == (1, 1, 1)
    assert not snap.finished
    # Samples left (the live run's and the queued run's) at the live run's rate.
    left = (LIVE.total_steps - 23) * 64 + queued.total_steps * 512
    assert snap.eta_s == pytest.approx(left / live.samples_per_s)


def test_render_shows_every_run_and_the_study_line(live_study: Path) -> None:
    lines = render(snapshot(live_study), width=120)
    assert lines[0].startswith("synthetic  ")
    assert lines[1].split()[:4] == ["run", "status", "step/steps", "loss"]
    live = _line(lines, LIVE.name)
    assert live.split()[1:3] == ["running", f"23/{LIVE.total_steps}"]
    spark = re.search(f"[{SPARK_BLOCKS}]+", live)
    assert spark is not None and len(spark.group()) >= 10
    assert _line(lines, "b512-queued").split()[1:3] == ["queued", "0/16"]
    assert _line(lines, DONE.name).split()[1] == "completed"
    assert re.fullmatch(r"study: 1 done / 1 running / 1 queued; \d+ samples/s; ETA \d+s", lines[-1])
    # Narrow terminals: the sparklines give way, no line is longer than the width.
    narrow = render(snapshot(live_study), width=60)
    assert all(len(line) <= 60 for line in narrow)
    assert not re.search(f"[{SPARK_BLOCKS}]", _line(narrow, LIVE.name))


def test_study_ends_when_nothing_runs(live_study: Path) -> None:
    with h5py.File(live_study / "runs" / f"{LIVE.name}.h5", "r+") as f:
        f["status/code"][0] = 4  # preempted
    snap = snapshot(live_study)
    assert (snap.done, snap.running, snap.queued) == (2, 0, 1)
    assert not snap.finished  # the queued run may still start ...
    assert render(snap)[-1].endswith("ETA ?")  # nothing trains: no rate to go by
    (live_study / "summary.csv").write_text("run\n")  # ... until the job writes its summary
    os.utime(live_study / "study.yaml", ns=(1, 1))
    snap = snapshot(live_study)
    assert snap.finished
    assert render(snap)[-1] == "study: 2 done / 0 running / 1 queued (1 preempted); study ended; 1 never started"


def test_a_file_being_created_shows_as_starting(live_study: Path) -> None:
    path = live_study / "runs" / "b512-queued.h5"
    path.write_bytes(b"not yet HDF5")
    assert read_run_view(path, tries=1).status == STARTING
    snap = snapshot(live_study, tries=1)
    assert [r.status for r in snap.runs] == ["completed", "running", STARTING]
    assert snap.running == 2 and not snap.finished


def test_folder_without_study_yaml_lists_the_files(tmp_path: Path) -> None:
    root = tmp_path / "study"
    (root / "runs").mkdir(parents=True)
    write_run_file(root / "runs" / "a.h5", DONE)
    snap = snapshot(root)
    assert snap.study == "synthetic" and [r.status for r in snap.runs] == ["completed"] and snap.finished


def test_sparkline_and_durations() -> None:
    assert sparkline([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]) == SPARK_BLOCKS
    assert sparkline([3.0, float("nan"), 3.0]) == "▄ ▄"
    assert sparkline([0.0, 1.0], SPARK_ASCII) == "_@"
    assert sparkline([]) == ""
    assert [format_duration(s) for s in (float("nan"), 0.4, 59, 61, 3600 * 2 + 7 * 60)] == ["?", "0s", "59s",
                                                                                           "1m01s", "2h07m"]


def test_watch_once_and_loop_into_a_pipe(live_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", str(live_study), "--once"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out  # no escape codes into a pipe
    assert "running" in out and "queued" in out
    # Not --once: a study with nothing left to run ends the loop after one snapshot.
    with h5py.File(live_study / "runs" / f"{LIVE.name}.h5", "r+") as f:
        f["status/code"][0] = 1
    (live_study / "study.yaml").write_text(_study_yaml([(DONE.name, (32, 32)), (LIVE.name, (32, 32))]))
    stream = io.StringIO()
    assert watch(live_study, interval_s=60.0, out=stream) == 0
    assert stream.getvalue().rstrip().endswith("study: 2 done / 0 running / 0 queued; study ended")


def test_watch_bad_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", str(tmp_path / "missing"), "--once"]) == 2
    assert main(["watch", str(tmp_path), "--once"]) == 2
    assert "no study.yaml and no run files" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["watch", str(tmp_path), "--interval", "0"])


def test_report_meta_refresh_only_when_asked(live_study: Path) -> None:
    runs = load_study(live_study)
    page, _ = write_report(runs, live_study / "live.html", refresh_s=2.5)
    assert f'{META} content="2.5">' in page.read_text()
    page, _ = write_report(runs, live_study / "plain.html")
    assert META not in page.read_text()
    assert not list(live_study.glob(".*.tmp"))  # written by rename


def test_report_refresh_on_a_finished_study_writes_once(live_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with h5py.File(live_study / "runs" / f"{LIVE.name}.h5", "r+") as f:
        f["status/code"][0] = 1
    (live_study / "study.yaml").write_text(_study_yaml([(DONE.name, (32, 32)), (LIVE.name, (32, 32))]))
    assert main(["report", str(live_study), "--refresh", "30"]) == 0  # returns at once
    page = (live_study / "report.html").read_text()
    assert META not in page and "Answers" in page
    assert capsys.readouterr().out.count("report.html") == 1


def test_report_refresh_rewrites_until_the_study_ends(live_study: Path) -> None:
    """The page carries a meta refresh while a run trains; the CLI ends once the run's status flips."""
    page = live_study / "report.html"
    env = dict(os.environ, PYTHONPATH=str(ANALYSIS_DIR))
    (live_study / "study.yaml").write_text(_study_yaml([(DONE.name, (32, 32)), (LIVE.name, (32, 32))]))
    proc = subprocess.Popen([sys.executable, "-m", "batchscope_analysis", "report", str(live_study),
                             "--refresh", "0.2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (page.exists() and META in page.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, "no refreshing page written"
            time.sleep(0.1)
        assert f'{META} content="0.2">' in page.read_text()
        with h5py.File(live_study / "runs" / f"{LIVE.name}.h5", "r+") as f:
            f["status/code"][0] = 1
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert META not in page.read_text()
    assert out.strip().splitlines()[-1].endswith("(2 runs)")


# ---------------------------------------------------------------- a real study, held mid-run


def _binary() -> Path:
    return Path(os.environ.get("BATCHSCOPE_BINARY", REPO / "build" / "batchscope"))


HOLD_STEP: int = 100


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="mpirun not installed")
@pytest.mark.skipif(not _binary().is_file(),
                    reason="no batchscope binary: build it (tests/run.sh) or set BATCHSCOPE_BINARY")
def test_watch_a_real_study_over_swmr(tmp_path: Path) -> None:
    """A 3-run study on one rank, its first run held at step HOLD_STEP with its run file open for SWMR writing:
    `watch --once` shows it running at that step and the other two queued; a `watch` started meanwhile
    exits 0 by itself once SIGUSR1 preempts the run and the job ends."""
    out = tmp_path / "study"
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               BATCHSCOPE_HOLD_AT_STEP=str(HOLD_STEP), PYTHONPATH=str(ANALYSIS_DIR))
    command = ["mpirun", "-np", "1", str(_binary()), "run", str(REPO / "configs" / "quickstart.yaml"),
               "--threads", "1", "--set", f"output={out}", "--set", "budget={steps: 400}",
               "--set", "data.train_size=4096", "--set", "eval={every_steps: 100, train_subset: 0}",
               "--set", "log.every_steps=5", "--set", "log.flush_seconds=0.2", "--set", "sweep.lr=[0.05]",
               "--set", "sweep.ranks=1", "--set", "sweep.split=[1]"]
    log_path = tmp_path / "run.log"
    analysis = [sys.executable, "-m", "batchscope_analysis"]
    with open(log_path, "w") as log:
        job = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    follower = None
    try:
        held = None
        deadline = time.monotonic() + 120
        while held is None:
            assert job.poll() is None, f"the job ended before holding:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"no hold after 120 s:\n{log_path.read_text()}"
            held = re.search(rf"^\[(\S+)\] holding at step {HOLD_STEP} ", log_path.read_text(), re.M)
            time.sleep(0.1)
        run = held.group(1)

        once = subprocess.run(analysis + ["watch", "--once", str(out)], env=env, capture_output=True, text=True,
                              timeout=60)
        assert once.returncode == 0, once.stderr
        lines = once.stdout.splitlines()
        assert _line(lines, run).split()[1:3] == ["running", f"{HOLD_STEP}/400"]
        others = [line for line in lines[2:-1] if line.split()[0] != run]
        assert len(others) == 2 and all(line.split()[1:3] == ["queued", "0/400"] for line in others)
        assert lines[-1].startswith("study: 0 done / 1 running / 2 queued; ")

        follower = subprocess.Popen(analysis + ["watch", "--interval", "0.3", str(out)], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.0)
        assert follower.poll() is None, "watch ended while the run was held"
        job.send_signal(signal.SIGUSR1)  # mpirun forwards it: the run checkpoints and the job exits 75
        assert job.wait(timeout=120) == 75, log_path.read_text()
        followed, _ = follower.communicate(timeout=60)
        assert follower.returncode == 0, followed
        last = followed.strip().split("\n\n")[-1].splitlines()
        assert _line(last, run).split()[1] == "preempted"
        assert last[-1] == "study: 1 done / 0 running / 2 queued (1 preempted); study ended; 2 never started"
    finally:
        for proc in (job, follower):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
