"""The analysis package type-checks under mypy, with the settings in analysis/pyproject.toml.

mypy comes from Debian's python3-mypy, which tests/run.sh installs (launch/deps.sh,
`bs_install_deps tests`). A missing mypy fails this test rather than skipping
it, so a machine without it cannot pass the suite unchecked.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parents[2]
CONFIG: str = "analysis/pyproject.toml"
PACKAGE: str = "analysis/batchscope_analysis"


def test_package_type_checks(tmp_path: Path) -> None:
    assert importlib.util.find_spec("mypy") is not None, (
        f"mypy is not installed for {sys.executable}: install python3-mypy "
        "(apt-get install python3-mypy, or run tests/run.sh, which installs it)"
    )
    # The cache goes to a temporary folder, not into the source tree.
    command = [sys.executable, "-m", "mypy", "--config-file", CONFIG, "--cache-dir", str(tmp_path / "mypy_cache"),
               PACKAGE]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"mypy found type errors (exit {result.returncode}); run from {REPO_ROOT}:\n"
        f"  {sys.executable} -m mypy --config-file {CONFIG} {PACKAGE}\n{result.stdout}{result.stderr}"
    )
