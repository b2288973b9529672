"""answers.json: every documented key, JSON-clean values, and the answers
the synthetic study's known truths imply."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from batchscope_analysis.answers import ANSWER_KEYS, SCHEMA, compute_answers, write_answers
from batchscope_analysis.cli import main
from batchscope_analysis.load import load_study

ROOT = Path(__file__).resolve().parents[2]


def documented_keys() -> list[str]:
    text = (ROOT / "docs" / "answers.md").read_text(encoding="utf-8")
    return re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.M)


def test_docs_list_exactly_the_keys_written() -> None:
    assert documented_keys() == list(ANSWER_KEYS)


def test_answers_hold_every_key_and_are_strict_json(study_dir: Path, tmp_path: Path) -> None:
    path = write_answers(load_study(study_dir), tmp_path / "answers.json")
    data = json.loads(path.read_text(encoding="utf-8"))  # strict: NaN would not parse back the same
    assert list(data) == list(ANSWER_KEYS)
    assert data["schema"] == SCHEMA and data["runs"] > 0
    assert all(isinstance(k, str) for k in data["b_simple_per_batch"] or {})
    assert isinstance(data["warnings"], list) and all(isinstance(w, str) for w in data["warnings"])


def test_report_writes_answers_beside_it_and_answers_prints_them(study_dir: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(study_dir), "--out", str(tmp_path / "r" / "report.html")]) == 0
    assert (tmp_path / "r" / "answers.json").exists()
    capsys.readouterr()
    assert main(["answers", str(study_dir), "--out", "-"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == compute_answers(load_study(study_dir))


def test_report_lists_every_warning_as_a_caveat(study_dir: Path, tmp_path: Path) -> None:
    assert main(["report", str(study_dir), "--out", str(tmp_path / "report.html")]) == 0
    warnings = json.loads((tmp_path / "answers.json").read_text(encoding="utf-8"))["warnings"]
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert warnings and 'id="caveats"' in page
    assert all(f"<li>{html.escape(w)}</li>" in page for w in warnings)


def test_the_headline_b_simple_carries_an_interval_or_says_why(study_dir: Path) -> None:
    data = compute_answers(load_study(study_dir))
    iv = data["b_simple_interval"]
    assert iv["value"] == pytest.approx(data["b_simple"])
    if iv["low"] is None:
        assert any(w.startswith("B_simple has no interval") for w in data["warnings"])
    else:
        assert iv["low"] <= iv["value"] <= iv["high"]
