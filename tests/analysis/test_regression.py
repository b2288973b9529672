"""Regression (model.loss: mse) runs: no accuracy columns, ranked by validation loss; model attributes.

The synthetic regression study (synthetic_runs.MSE_SPECS) has NaN accuracy,
losses that are a fixed multiple of the classification study's errors (so
B=64 wins and B_crit = 128 for the target val_loss <= 0.3), and BatchNorm
buffers in every run.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from synthetic_runs import (
    BN_BUFFERS,
    B_CRIT,
    EPOCHS,
    MSE_SCALE,
    MSE_TARGET_VALUE,
    TRAIN_SIZE,
    RunSpec,
    mse_train_loss,
    mse_val_loss,
    write_run_file,
)

from batchscope_analysis.cli import main
from batchscope_analysis.findings import compute_findings
from batchscope_analysis.generalization import equal_epochs, final_by_batch, gap_trend
from batchscope_analysis.load import (
    REGRESSION_TABLE_COLUMNS,
    RUNS_TABLE_COLUMNS,
    eval_table,
    load_run,
    load_study,
    runs_table,
)
from batchscope_analysis.plots import ALL_FIGURES, FINAL_FIGURE, plot_final_vs_batch
from batchscope_analysis.schema import check_run_file
from batchscope_analysis.score import ACCURACY, LOSS, study_score
from batchscope_analysis.target import Target, study_target
from batchscope_analysis.textfmt import fmt

DATA_URI: str = "data:image/png;base64,"
ACCURACY_WORDS: tuple[str, ...] = ("val_acc", "train_acc", "val_error", "accuracy")


def _seed_mean_loss(specs: dict[str, RunSpec], batch: int) -> float:
    return float(np.mean([mse_val_loss(s, np.float64(EPOCHS * TRAIN_SIZE)) for s in specs.values()
                          if s.global_batch == batch]))


def _summary_cells(out: str) -> tuple[list[str], dict[str, dict[str, str]], list[str]]:
    """(header, run -> column -> cell, lines after the table) of `summary` output."""
    lines = out.rstrip("\n").splitlines()
    header = lines[0].split()
    end = next(i for i, line in enumerate(lines) if line.startswith("steps_to_target:"))
    cells = {r.split()[0]: dict(zip(header, r.split())) for r in lines[1:end]}
    return header, cells, lines[end:]


def _html_part(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.S)
    assert match, f"nothing matches {pattern!r}"
    return html.unescape(match.group(1))


def _html_headers(text: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", text)]


# ---------------------------------------------------------------- attributes


def test_model_attrs_default_for_files_without_them(study_dir: Path) -> None:
    path = study_dir / "runs" / "b64-s0.h5"
    with h5py.File(path, "r+") as f:
        for name in ("model_loss", "model_init", "model_buffers"):
            del f.attrs[name]
    assert check_run_file(path) == []  # optional: files from before them stay valid
    run = load_run(path)
    assert (run.attrs["model_loss"], run.attrs["model_init"], run.attrs["model_buffers"]) == (
        "cross_entropy", "builtin", "")
    assert run.model_loss == "cross_entropy" and run.has_accuracy and run.model_init == "builtin"
    assert run.buffers == []


def test_mse_run_attrs(mse_study_dir: Path) -> None:
    run = load_run(mse_study_dir / "runs" / "m64-s0.h5")
    assert run.model_loss == "mse" and not run.has_accuracy
    assert run.model_init == "file" and run.attrs["model"] == "torchscript"
    assert run.buffers == list(BN_BUFFERS)
    assert run.eval["val_acc"].isna().all() and run.eval["train_acc"].isna().all()
    assert study_score([run]) == LOSS
    assert study_score(load_study(mse_study_dir)) == LOSS


def test_check_accepts_mse_study(mse_study_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(mse_study_dir)]) == 0
    assert capsys.readouterr().out.strip() == "8 run files OK"


def test_check_flags_bad_model_attrs(mse_study_dir: Path) -> None:
    path = mse_study_dir / "runs" / "m32-s0.h5"
    with h5py.File(path, "r+") as f:
        f["eval/val_acc"][0] = 0.5
        f.attrs["model_init"] = "random"
        f.attrs["model_buffers"] = np.int64(3)
        f.attrs["target_metric"] = "val_error"
        f.attrs["target_value"] = 0.15
    problems = check_run_file(path)
    assert "'/eval/val_acc' has 1 finite values, expected NaN for an mse run ('model_loss' mse)" in problems
    assert "root attribute 'model_init' is 'random', expected one of builtin, file, seeded" in problems
    assert any(p.startswith("root attribute 'model_buffers' should be a scalar str") for p in problems)
    assert any("'target_metric' is 'val_error', but an mse run has no accuracy" in p for p in problems)
    with h5py.File(path, "r+") as f:
        f.attrs["model_loss"] = "hinge"
    assert "root attribute 'model_loss' is 'hinge', expected one of cross_entropy, mse" in check_run_file(path)


# ---------------------------------------------------------------- tables


def test_runs_table_of_mse_study_has_no_accuracy_columns(mse_study_dir: Path, mse_specs: dict[str, RunSpec]) -> None:
    table = runs_table(load_study(mse_study_dir))
    assert list(table.columns) == list(REGRESSION_TABLE_COLUMNS)
    assert not [c for c in table.columns if "acc" in c or c == "gap"]
    assert table.notna().all().drop(["steps_to_target", "samples_to_target"]).all()
    for row in table.itertuples(index=False):
        spec = mse_specs[row.run]
        evals = np.array(spec.eval_steps(), dtype=float) * spec.global_batch
        last = evals[-1]
        assert row.final_val_loss == pytest.approx(float(mse_val_loss(spec, last)))
        assert row.best_val_loss == pytest.approx(float(np.min(mse_val_loss(spec, evals))))
        assert row.final_train_loss == pytest.approx(float(mse_train_loss(spec, last)))
        assert row.loss_gap == pytest.approx(float(mse_val_loss(spec, last) - mse_train_loss(spec, last)))
    # B=32 overfits: its lowest loss comes before the end, so best is the minimum, not the last.
    b32 = table.set_index("run").loc["m32-s0"]
    assert b32["best_val_loss"] < b32["final_val_loss"] - 0.01


def test_eval_table_of_mse_study_drops_accuracy(mse_study_dir: Path) -> None:
    evals = eval_table(load_study(mse_study_dir))
    assert not {"val_acc", "train_acc", "gap"} & set(evals.columns)
    np.testing.assert_allclose(evals["loss_gap"], evals["val_loss"] - evals["train_loss"])


def test_mixed_study_keeps_accuracy(study_dir: Path, mse_study_dir: Path) -> None:
    runs = load_study([study_dir, mse_study_dir / "runs" / "m64-s0.h5"])
    assert study_score(runs) == ACCURACY
    table = runs_table(runs).set_index("run")
    assert list(table.reset_index().columns) == list(RUNS_TABLE_COLUMNS)
    assert np.isnan(table.loc["m64-s0", "final_val_acc"]) and np.isnan(table.loc["m64-s0", "best_val_acc"])
    equal = equal_epochs(runs)
    assert equal.excluded == {"status running": 1, "no finite evaluation": 1}


# ---------------------------------------------------------------- ranking


def test_equal_epochs_ranks_mse_study_on_lowest_loss(mse_study_dir: Path, mse_specs: dict[str, RunSpec]) -> None:
    equal = equal_epochs(load_study(mse_study_dir))
    assert equal.score == LOSS and equal.epoch == EPOCHS and equal.excluded == {}
    assert list(equal.per_run.columns) == ["run", "global_batch", "base_lr", "seed", "val_loss", "train_loss", "gap"]
    by_batch = equal.by_batch.set_index("global_batch")
    for batch, row in by_batch.iterrows():
        assert row["val_loss_mean"] == pytest.approx(_seed_mean_loss(mse_specs, int(batch)))
    # Lowest loss wins: B=64. Ranking on the highest would pick B=256.
    assert by_batch["val_loss_mean"].idxmin() == 64
    assert by_batch["val_loss_mean"].idxmax() == 256
    # Loss gap = MSE_SCALE x the accuracy gap: 0.02 x (1 + log2(B / 32)) x 2.
    trend = gap_trend(equal.by_batch, equal.score)
    assert trend.per_doubling == pytest.approx(MSE_SCALE * 0.02)
    assert trend.direction == "grows"
    stats = final_by_batch(runs_table(load_study(mse_study_dir)))
    assert {"val_loss_mean", "best_val_loss_mean", "gap_mean"} <= set(stats.columns)
    assert not [c for c in stats.columns if "acc" in c]


def test_findings_of_mse_study(mse_study_dir: Path, mse_specs: dict[str, RunSpec]) -> None:
    findings = compute_findings(load_study(mse_study_dir))
    answers = {a.topic: a.text for a in findings.answers}
    best, largest = _seed_mean_loss(mse_specs, 64), _seed_mean_loss(mse_specs, 256)
    assert answers["Best batch at equal epochs"].startswith(
        f"B=64 reached the lowest validation loss at equal epochs (4 epochs): {best:.4g} (mean of 2 seeds")
    assert f"{largest - best:.4g} below the largest batch, B=256 ({largest:.4g})" in answers[
        "Best batch at equal epochs"]
    assert findings.target == Target("val_loss", MSE_TARGET_VALUE)
    assert findings.fit.b_crit == pytest.approx(B_CRIT)
    assert "validation minus training loss" in answers["Generalization gap"]
    assert "grows with batch size" in answers["Generalization gap"]
    assert "Caveat: 8 of 8 runs train a model with buffers (BatchNorm)" in answers["Gradient noise scale"]
    for text in answers.values():
        assert not any(word in text for word in ACCURACY_WORDS), text


def test_accuracy_target_on_mse_study_says_why(mse_study_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = load_study(mse_study_dir)
    target, note = study_target(runs, Target("val_error", 0.15))
    assert target is None
    assert "needs accuracy, which mse runs do not have" in note and "val_loss=VALUE" in note
    assert main(["summary", str(mse_study_dir), "--target", "val_acc=0.9"]) == 0
    _header, cells, after = _summary_cells(capsys.readouterr().out)
    assert after[0].startswith("steps_to_target: target val_acc >= 0.9 needs accuracy")
    assert {c["steps_to_target"] for c in cells.values()} == {"-"}
    # A loss target given on the command line is used.
    assert main(["summary", str(mse_study_dir), "--target", "train_loss=0.3"]) == 0
    _header, cells, after = _summary_cells(capsys.readouterr().out)
    assert after[0] == "steps_to_target: first evaluated step with train_loss <= 0.3"
    assert cells["m64-s0"]["steps_to_target"] != "-"


# ---------------------------------------------------------------- CLI and report


def test_summary_of_mse_study(
    mse_study_dir: Path, mse_specs: dict[str, RunSpec], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summary", str(mse_study_dir)]) == 0
    out = capsys.readouterr().out
    header, cells, after = _summary_cells(out)
    assert not [c for c in header if "acc" in c or c == "gap"]
    assert {"final_val_loss", "best_val_loss", "loss_gap", "steps_to_target"} <= set(header)
    assert "nan" not in out.lower()
    assert list(cells) == ["m32-s0", "m32-s1", "m64-s0", "m64-s1", "m128-s0", "m128-s1", "m256-s0", "m256-s1"]
    assert cells["m32-s0"]["steps_to_target"] == "100"  # S(32) = 20 + 2560 / 32
    assert cells["m256-s1"]["steps_to_target"] == "-"
    spec = mse_specs["m64-s0"]
    last = np.float64(spec.eval_steps()[-1] * spec.global_batch)
    assert cells["m64-s0"]["final_val_loss"] == f"{float(mse_val_loss(spec, last)):.4g}"
    assert after[0] == f"steps_to_target: first evaluated step with val_loss <= {MSE_TARGET_VALUE:g}"
    assert after[1].startswith("note: All runs train a model with buffers (bn0.num_batches_tracked, ")
    assert "split invisibility does not hold" in after[1]


def test_report_of_mse_study(mse_study_dir: Path) -> None:
    assert main(["report", str(mse_study_dir)]) == 0
    text = (mse_study_dir / "report.html").read_text(encoding="utf-8")
    answers = _html_part(r'<section id="answers">(.*?)</section>', text)
    assert "B=64 reached the lowest validation loss at equal epochs (4 epochs)" in answers
    assert f"B_crit ≈ {fmt(B_CRIT)} samples" in answers and "val_loss <= 0.3" in answers
    assert not any(word in answers for word in ACCURACY_WORDS)
    # No accuracy column in any table: losses instead.
    tables = text.split('id="tables"')[1]
    headers = _html_headers(tables)
    assert not [h for h in headers if "acc" in h or h in ("gap", "equal epoch gap")]
    for wanted in ("equal epoch val loss", "equal epoch loss gap", "final val loss", "best val loss", "loss gap"):
        assert wanted in headers, wanted
    words = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text).lower()
    assert "nan" not in words
    # Not a word about accuracy anywhere (tests/e2e/own_model.sh checks a real study the same way).
    assert "accuracy" not in words and "val_acc" not in words
    # The model line and the BatchNorm note.
    assert "model torchscript (mean squared error, init file)" in html.unescape(text)
    note = _html_part(r'<p class="note" id="buffers">(.*?)</p>', text)
    assert note.startswith("All runs train a model with buffers (bn0.num_batches_tracked, bn0.running_mean")
    assert "split invisibility does not hold" in note
    assert text.count(DATA_URI) == len(ALL_FIGURES)


def test_final_figure_of_mse_study_draws_losses(mse_study_dir: Path, tmp_path: Path) -> None:
    path = plot_final_vs_batch(load_study(mse_study_dir), tmp_path)[0]
    assert path == tmp_path / FINAL_FIGURE
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and b"no data" not in data and len(data) > 10_000


def test_classification_run_with_buffers_is_named(study_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Without buffers there is no note.
    assert main(["summary", str(study_dir)]) == 0
    assert "note:" not in capsys.readouterr().out
    assert main(["report", str(study_dir)]) == 0
    assert 'id="buffers"' not in (study_dir / "report.html").read_text(encoding="utf-8")
    capsys.readouterr()

    spec = RunSpec("b64-bn", (16, 48), 0, 0.1, init="seeded", buffers=("bn1.running_mean", "bn1.running_var"))
    write_run_file(study_dir / "runs" / "b64-bn.h5", spec)
    assert main(["summary", str(study_dir)]) == 0
    header, _cells, after = _summary_cells(capsys.readouterr().out)
    assert "final_val_acc" in header  # still a classification study
    assert after[1].startswith("note: Runs b64-bn train a model with buffers (bn1.running_mean, bn1.running_var)")
    assert main(["report", str(study_dir)]) == 0
    text = html.unescape((study_dir / "report.html").read_text(encoding="utf-8"))
    assert "Runs b64-bn train a model with buffers" in text
    assert "torchscript (cross-entropy, init seeded)" in text and "mlp (cross-entropy)" in text
