"""The HTML report: opens with the answers, embeds every figure, and says why when it cannot answer."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import h5py
import pytest
from synthetic_runs import B_CRIT, EPOCHS, STUDY_SPECS, TRAIN_SIZE, val_acc

from batchscope_analysis.cli import main
from batchscope_analysis.findings import compute_findings
from batchscope_analysis.load import load_study
from batchscope_analysis.plots import ALL_FIGURES
from batchscope_analysis.target import Target
from batchscope_analysis.textfmt import fmt, points

PNG_MAGIC: bytes = b"\x89PNG\r\n\x1a\n"
DATA_URI: str = "data:image/png;base64,"


def _answers(html_text: str) -> str:
    match = re.search(r'<section id="answers">(.*?)</section>', html_text, re.S)
    assert match, "no answers section"
    return match.group(1)


def _mean_acc(batch: int) -> float:
    accs = [float(val_acc(s, EPOCHS * TRAIN_SIZE)) for s in STUDY_SPECS
            if s.global_batch == batch and s.status == "completed"]
    return sum(accs) / len(accs)


def test_report_from_synthetic_study(study_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(study_dir), "--target", "val_error=0.15"]) == 0
    report = study_dir / "report.html"
    printed = capsys.readouterr().out.split()
    assert printed[-1] == str(report)
    text = report.read_text(encoding="utf-8")

    # The answers come first, before any figure.
    assert text.index('id="answers"') < text.index(DATA_URI)
    answers = _answers(text)
    assert f"B_crit ≈ {fmt(B_CRIT)} samples" in answers
    assert fmt(B_CRIT) == "128"
    assert "S_min = 20 steps, E_min = 2,560 samples" in answers
    best_by = points(_mean_acc(64) - _mean_acc(256))
    assert "B=64 reached the best validation accuracy at equal epochs (4 epochs)" in answers
    assert f"{best_by} above the largest batch, B=256" in answers
    assert "gradient noise scale B_simple is" in answers and "per global batch: B=32:" in answers
    assert "generalization gap" in answers and "grows with batch size" in answers

    # Every figure embedded once, each a real PNG, and also written to figures/.
    assert text.count(DATA_URI) == len(ALL_FIGURES)
    for blob in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text):
        assert base64.b64decode(blob)[:8] == PNG_MAGIC
    for name in ALL_FIGURES:
        path = study_dir / "figures" / name
        assert path.is_file() and path.stat().st_size > 10_000, name
        assert str(path) in printed
    # Tables follow the figures.
    assert text.index(DATA_URI) < text.index('id="tables"')
    assert "<table" in text.split('id="tables"')[1]


def test_report_out_option_and_stored_target(study_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "study.html"
    # No --target: the target stored in b128-s0 is used for the whole study.
    assert main(["report", str(study_dir), "--out", str(out)]) == 0
    assert out.is_file() and not (study_dir / "report.html").exists()
    assert sorted(p.name for p in (out.parent / "figures").iterdir()) == sorted(ALL_FIGURES)
    text = out.read_text(encoding="utf-8")
    assert "declared in 1 of 9 run files" in text
    assert "B_crit ≈ 128 samples" in _answers(text)


def test_report_without_reachable_target_says_why(study_dir: Path) -> None:
    assert main(["report", str(study_dir), "--target", "val_error=0.01"]) == 0
    text = (study_dir / "report.html").read_text(encoding="utf-8")
    answers = _answers(text)
    assert "Not estimated for target val_error &lt;= 0.01: no run reached the target" in answers
    # The figures that cannot be drawn are still there, as "no data" PNGs.
    assert text.count(DATA_URI) == len(ALL_FIGURES)
    assert b"no data: no run reached the target" in (study_dir / "figures" / "steps_to_target.png").read_bytes()


def test_report_without_any_target(study_dir: Path) -> None:
    with h5py.File(study_dir / "runs" / "b128-s0.h5", "r+") as f:
        f.attrs["target_metric"] = "none"
        f.attrs["target_value"] = float("nan")
        f["target/step"][0] = -1
        f["target/samples"][0] = -1
    findings = compute_findings(load_study(study_dir))
    critical = next(a for a in findings.answers if a.topic == "Critical batch size")
    assert critical.text.startswith("Not estimated: no run file declares a target")
    assert main(["report", str(study_dir)]) == 0
    assert (study_dir / "report.html").read_text(encoding="utf-8").count(DATA_URI) == len(ALL_FIGURES)


def test_findings_numbers(study_dir: Path) -> None:
    findings = compute_findings(load_study(study_dir), Target("val_error", 0.15))
    assert [a.topic for a in findings.answers] == [
        "Best batch at equal epochs", "Gradient noise scale", "Critical batch size", "Generalization gap",
        "Sharpness",
    ]
    assert findings.fit.b_crit == pytest.approx(B_CRIT)
    assert findings.noise_per_batch["global_batch"].tolist() == [32, 64, 128, 256]
    assert findings.noise_overall > 0
    assert findings.studies == ["synthetic"] and findings.runs == len(STUDY_SPECS)

def test_a_report_over_several_folders_names_each_runs_folder(study_dir: Path, tmp_path: Path) -> None:
    import shutil

    from batchscope_analysis.cli import main

    other = tmp_path / "copy"
    shutil.copytree(study_dir, other)
    out = tmp_path / "two.html"
    assert main(["report", str(study_dir), str(other), "--out", str(out)]) == 0
    page = out.read_text()
    runs_part = page[page.index("<h3>Runs</h3>"):]
    assert "<th>folder</th>" in runs_part
    assert str(other) in runs_part and str(study_dir) in runs_part
    single = tmp_path / "one.html"
    assert main(["report", str(study_dir), "--out", str(single)]) == 0
    assert "<th>folder</th>" not in single.read_text()


def test_the_report_lists_runs_study_yaml_plans_but_no_file_holds_yet(study_dir: Path, tmp_path: Path) -> None:
    from batchscope_analysis.cli import main

    names = sorted(p.stem for p in (study_dir / "runs").glob("*.h5"))
    runs = "".join(f"  - {{name: {n}, batch: [32], lr: 0.1, seed: 0}}\n" for n in names + ["b999-queued"])
    (study_dir / "study.yaml").write_text("study: synthetic\nbudget:\n  steps: 10\nruns:\n" + runs)
    out = tmp_path / "r.html"
    assert main(["report", str(study_dir), "--out", str(out)]) == 0
    page = out.read_text()
    assert 'id="queued">Queued (in study.yaml, no run file yet): b999-queued.</p>' in page
    (study_dir / "study.yaml").write_text("study: synthetic\nbudget:\n  steps: 10\nruns:\n" + runs.split("  - {name: b999")[0])
    assert main(["report", str(study_dir), "--out", str(out)]) == 0
    assert 'id="queued"' not in out.read_text()

