"""The command line: output, exit codes, and one-line errors for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from synthetic_runs import STUDY_SPECS

from batchscope_analysis.cli import main
from batchscope_analysis.plots import ALL_FIGURES

ANALYSIS_DIR: Path = Path(__file__).resolve().parents[2] / "analysis"


def test_plot_default_figure_dir(study_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", str(study_dir)]) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == list(ALL_FIGURES)
    for p in printed:
        assert Path(p).parent == study_dir / "figures"
        assert Path(p).stat().st_size > 10_000


def test_plot_out_option(study_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "elsewhere"
    assert main(["plot", str(study_dir), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(ALL_FIGURES)
    assert not (study_dir / "figures").exists()


def test_summary_prints_every_run_sorted(study_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(study_dir)]) == 0
    lines = capsys.readouterr().out.rstrip("\n").splitlines()
    table, footer = lines[:-1], lines[-1]
    header, rows = table[0].split(), table[1:]
    assert header[:3] == ["run", "study", "global_batch"]
    assert {"steps_to_target", "b_simple_median", "b_simple_final", "microbatches"} <= set(header)
    assert len(rows) == len(STUDY_SPECS)
    names = [r.split()[0] for r in rows]
    # global batch, then lr (0.05 before 0.1), then seed.
    assert names == [
        "b32-s0", "b32-s1", "b64-s2-live", "b64-s0", "b64-s1", "b128-s0", "b128-s1", "b256-s0", "b256-s1",
    ]
    cells = {r.split()[0]: dict(zip(header, r.split())) for r in rows}
    assert cells["b64-s2-live"]["status"] == "running"
    # Without --target, the target stored in b128-s0 applies to the whole study.
    assert cells["b32-s0"]["steps_to_target"] == "100"
    assert cells["b256-s1"]["steps_to_target"] == "-"  # never reached
    assert footer == "steps_to_target: first evaluated step with val_error <= 0.15"
    # Aligned text: every line of the table has the same width as the header.
    assert len({len(line) for line in table}) == 1


def test_summary_csv_shares_the_binary_summary_conventions(study_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import csv
    import io

    assert main(["summary", str(study_dir), "--csv"]) == 0
    text = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(text.split("steps_to_target:")[0])))
    assert len(rows) == len(STUDY_SPECS)
    # The names the binary's summary.csv uses (src/app/console.cpp summary_csv) where both have the column.
    binary = ("run,study,global_batch,ranks,base_lr,peak_lr,seed,status,steps,steps_to_target,final_val_acc,"
              "best_val_acc,final_train_acc,samples_per_s,wall_s").split(",")
    shared = set(rows[0]) & set(binary)
    assert {"run", "study", "global_batch", "ranks", "base_lr", "seed", "status", "steps", "steps_to_target",
            "final_val_acc", "best_val_acc", "samples_per_s"} <= shared
    by_run = {r["run"]: r for r in rows}
    assert by_run["b256-s1"]["steps_to_target"] == ""  # missing: an empty field, as in summary.csv
    assert by_run["b32-s0"]["steps_to_target"] == "100"


def test_summary_of_several_folders_names_each_runs_folder(study_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    other = tmp_path / "other"
    shutil.copytree(study_dir, other)
    assert main(["summary", str(study_dir)]) == 0
    assert "folder" not in capsys.readouterr().out.splitlines()[0].split()
    assert main(["summary", str(study_dir), str(other)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:4] == ["run", "study", "folder", "global_batch"]
    folders = {line.split()[2] for line in lines[1:-1]}
    assert folders == {str(study_dir), str(other)}
    assert len(lines) - 2 == 2 * len(STUDY_SPECS)


def test_summary_with_target_option(study_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(study_dir), "--target", "val_acc=0.87"]) == 0
    lines = capsys.readouterr().out.rstrip("\n").splitlines()
    header = lines[0].split()
    cells = {r.split()[0]: dict(zip(header, r.split())) for r in lines[1:-1]}
    # val_acc >= 0.87 is val_error <= 0.13: later than the stored 0.15 target.
    assert int(cells["b32-s0"]["steps_to_target"]) > 100
    assert lines[-1] == "steps_to_target: first evaluated step with val_acc >= 0.87"


@pytest.mark.parametrize("bad", ["val_error", "val_error=abc", "accuracy=0.9"])
def test_bad_target_is_usage_error(study_dir: Path, bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["report", str(study_dir), "--target", bad])
    assert info.value.code == 2
    assert "--target" in capsys.readouterr().err


def test_check_ok(study_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(study_dir)]) == 0
    assert capsys.readouterr().out.strip() == f"{len(STUDY_SPECS)} run files OK"


def test_check_reports_problem(study_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = study_dir / "runs" / "b64-s1.h5"
    with h5py.File(bad, "r+") as f:
        f["train/samples"][0] = 1
    assert main(["check", str(study_dir)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}: '/train/samples' != step * global_batch" in out
    assert f"1 of {len(STUDY_SPECS)} run files have problems" in out


@pytest.mark.parametrize("command", ["report", "plot", "summary", "check"])
def test_missing_dir_is_one_line_error(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-study"
    assert main([command, str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == 1
    assert str(missing) in err_lines[0]


def test_empty_dir_and_unreadable_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err
    junk = tmp_path / "junk.h5"
    junk.write_text("not an HDF5 file")
    for command in ("check", "summary"):
        assert main([command, str(junk)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(junk) in err[0]


def test_malformed_run_file_in_summary_exit_2(study_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = study_dir / "runs" / "b32-s1.h5"
    with h5py.File(bad, "r+") as f:
        del f["eval"]
    assert main(["summary", str(study_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0]


def test_python_dash_m_entry_point(study_dir: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ANALYSIS_DIR))
    result = subprocess.run(
        [sys.executable, "-m", "batchscope_analysis", "check", str(study_dir)],
        capture_output=True, text=True, env=env, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{len(STUDY_SPECS)} run files OK"
