"""docs/python-api.md: its code blocks run, in order, against a synthetic
study, so the documented API cannot drift from the package."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

DOC = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_docs_have_examples() -> None:
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 4
    assert any("load_study" in b for b in blocks)


def test_every_block_runs_and_gives_what_it_says(study_dir: Path, tmp_path: Path) -> None:
    scope: dict[str, Any] = {"STUDY": study_dir, "OUT": tmp_path}
    for block in python_blocks(DOC.read_text()):
        exec(compile(block, str(DOC), "exec"), scope)
    table = scope["table"]
    assert isinstance(table, pd.DataFrame) and len(table) == len(scope["runs"]) > 0
    assert set(table["status"]) <= {"completed", "diverged", "preempted", "running", "failed"}
    assert all(isinstance(s, str) for s in table["run"])
    best = scope["best"]
    assert list(best.index) == sorted(table["global_batch"].unique())
    assert (tmp_path / "loss_vs_samples.png").stat().st_size > 10_000
    assert "b_simple" in scope["answers"] and "best_batch" in scope["answers"]
