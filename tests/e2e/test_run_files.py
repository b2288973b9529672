"""Checks the run files an end-to-end study wrote (tests/e2e/run_quickstart.sh)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from batchscope_analysis.schema import check_run_file

OUT = Path(os.environ.get("BATCHSCOPE_E2E_DIR", ""))
pytestmark = pytest.mark.skipif(not OUT.name, reason="set BATCHSCOPE_E2E_DIR (run by tests/e2e/run_quickstart.sh)")


def run_files() -> list[Path]:
    return sorted((OUT / "runs").glob("*.h5"))


def study() -> dict:
    return yaml.safe_load((OUT / "study.yaml").read_text())


def test_one_file_per_run() -> None:
    names = sorted(r["name"] for r in study()["runs"])
    assert names == sorted(p.stem for p in run_files())
    assert len(names) == 4  # 3 swept batches + 1 explicit single-rank run


def test_summary_csv_lists_every_run_completed() -> None:
    with open(OUT / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["run"] for r in rows) == sorted(p.stem for p in run_files())
    assert all(r["status"] == "completed" for r in rows)


@pytest.mark.parametrize("path", run_files(), ids=lambda p: p.stem)
def test_schema(path: Path) -> None:
    assert check_run_file(path) == []


@pytest.mark.parametrize("path", run_files(), ids=lambda p: p.stem)
def test_contents(path: Path) -> None:
    with h5py.File(path, "r", swmr=True) as f:
        n = int(f.attrs["ranks"])
        B = int(f.attrs["global_batch"])
        T = int(f.attrs["total_steps"])
        batch = f["layout/batch_per_rank"][:]
        assert batch.sum() == B and len(batch) == n
        assert f["layout/train_size"][()] == 20000
        # Shapes
        assert f["train/step"].shape == (T,)
        assert f["train/loss_rank"].shape == (T, n)
        assert f["gns/sqnorm_local"].shape == (T, n)
        assert f["gns/sqnorm_global"].shape == (T,)
        # Monotone, contiguous steps; samples follow
        step = f["train/step"][:]
        assert np.array_equal(step, np.arange(1, T + 1))
        assert np.array_equal(f["train/samples"][:], step * B)
        assert np.all(np.diff(f["train/wall_s"][:]) >= 0)
        # Finite values
        for name in ["train/loss", "train/loss_rank", "train/lr", "gns/sqnorm_local", "gns/sqnorm_global"]:
            assert np.all(np.isfinite(f[name][:])), name
        # The global loss is the sample-weighted mean of the rank losses.
        w = batch / B
        np.testing.assert_allclose(f["train/loss"][:], f["train/loss_rank"][:] @ w, rtol=1e-5)
        # Noise estimates exist only with more than one small batch.
        b_simple = f["gns/b_simple"][:]
        if n > 1:
            assert np.all(np.isfinite(b_simple))
            assert b_simple[-1] > 0
        else:
            assert np.all(np.isnan(b_simple))
        # Status: completed at the last step
        assert f["status/code"][0] == 1
        assert f["status/step"][0] == T
        # Evaluations at start and end; the model learned something.
        ev = f["eval/step"][:]
        assert ev[0] == 0 and ev[-1] == T and len(ev) >= 2
        acc = f["eval/val_acc"][:]
        assert np.all((acc >= 0) & (acc <= 1))
        assert acc[-1] > 0.5, f"final val acc {acc[-1]}"
        assert f["eval/train_acc"][-1] > 0.5
        q = max(1, T // 4)
        loss = f["train/loss"][:]
        assert loss[-q:].mean() < loss[:q].mean()
        # Provenance
        for key in ["study_yaml", "run_yaml", "git_revision", "version_torch", "version_mpi", "version_hdf5"]:
            assert isinstance(f.attrs[key], str) and f.attrs[key]


@pytest.mark.parametrize("path", run_files(), ids=lambda p: p.stem)
def test_python_resmoothing_reproduces_the_writer(path: Path) -> None:
    """The analysis package's estimator and the C++ one agree on real files."""
    from batchscope_analysis.load import load_run
    from batchscope_analysis.noise import resmooth

    run = load_run(path)
    again = resmooth(run)
    with h5py.File(path, "r", swmr=True) as f:
        stored = {k: f[f"gns/{k}"][:] for k in ("g2_est", "trsigma_est", "b_simple")}
    for key, values in stored.items():
        np.testing.assert_allclose(again[key].to_numpy(), values, rtol=1e-9, equal_nan=True, err_msg=key)
