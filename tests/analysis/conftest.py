"""Fixtures: synthetic study folders and run files (see synthetic_runs.py)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

# The package is not installed; import it from the source tree. The test
# folder itself is added too, so synthetic_runs imports under any import mode.
ANALYSIS_DIR: Path = Path(__file__).resolve().parents[2] / "analysis"
TESTS_DIR: Path = Path(__file__).resolve().parent
for _dir in (ANALYSIS_DIR, TESTS_DIR):
    if str(_dir) not in sys.path:
        sys.path.insert(0, str(_dir))

from synthetic_runs import MSE_SPECS, STUDY_SPECS, RunSpec, write_run_file, write_study  # noqa: E402


@pytest.fixture(scope="session")
def _pristine_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_study(tmp_path_factory.mktemp("pristine") / "study")


@pytest.fixture
def study_dir(_pristine_study: Path, tmp_path: Path) -> Path:
    """A fresh copy per test, so tests may corrupt or add files freely."""
    return Path(shutil.copytree(_pristine_study, tmp_path / "study"))


@pytest.fixture(scope="session")
def _pristine_mse_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_study(tmp_path_factory.mktemp("pristine-mse") / "study", MSE_SPECS, study="synthetic-mse")


@pytest.fixture
def mse_study_dir(_pristine_mse_study: Path, tmp_path: Path) -> Path:
    """A fresh copy of the regression study (MSE_SPECS: no accuracy, BatchNorm buffers)."""
    return Path(shutil.copytree(_pristine_mse_study, tmp_path / "mse-study"))


@pytest.fixture
def mse_specs() -> dict[str, RunSpec]:
    return {spec.name: spec for spec in MSE_SPECS}


@pytest.fixture
def specs() -> dict[str, RunSpec]:
    return {spec.name: spec for spec in STUDY_SPECS}


@pytest.fixture
def run_file(tmp_path: Path) -> Path:
    """One valid completed two-rank run file with an uneven batch split."""
    spec = next(s for s in STUDY_SPECS if s.batch_per_rank == (48, 80))
    return write_run_file(tmp_path / "run.h5", spec)
