"""`pip install ./analysis` works on a fresh machine: into a new virtual
environment (Debian refuses pip installs into the system Python, PEP 668),
with the dependencies pyproject.toml declares, and the installed
`batchscope-analysis` command runs. It needs the package index for the
build backend and any dependency the system lacks (h5py: Debian's is named
h5py.-debian-h5py-serial, so pip fetches its own)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ANALYSIS = Path(__file__).resolve().parents[2] / "analysis"


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_pip_install_into_a_fresh_venv_gives_the_command(tmp_path: Path, study_dir: Path) -> None:
    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)])
    assert made.returncode == 0, made.stderr
    source = tmp_path / "analysis"  # a copy: building writes an .egg-info beside the sources
    shutil.copytree(ANALYSIS, source, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"))
    pip = run([str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "-q", str(source)])
    assert pip.returncode == 0, pip.stdout + pip.stderr
    cli = venv / "bin" / "batchscope-analysis"
    version = run([str(cli), "--version"])
    assert version.returncode == 0 and "0.1.0" in version.stdout + version.stderr, version
    summary = run([str(cli), "summary", str(study_dir)])
    assert summary.returncode == 0, summary.stderr
    assert "b64-s0" in summary.stdout
