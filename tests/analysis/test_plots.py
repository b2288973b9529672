"""Figures are written as real PNGs, and the seed aggregation behind them is right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from batchscope_analysis.load import load_study, runs_table
from batchscope_analysis.plots import final_by_batch, plot_final_vs_batch, plot_loss_vs_samples

PNG_MAGIC: bytes = b"\x89PNG\r\n\x1a\n"


def _assert_real_png(path: Path) -> None:
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 600
    # A figure with drawn content is not one flat colour.
    assert np.ptp(image[..., :3]) > 0.5


def test_loss_vs_samples_png(study_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "figs"
    paths = plot_loss_vs_samples(load_study(study_dir), out)
    assert paths == [out / "loss_vs_samples.png"]
    _assert_real_png(paths[0])


def test_final_vs_batch_png(study_dir: Path, tmp_path: Path) -> None:
    paths = plot_final_vs_batch(load_study(study_dir), tmp_path)
    assert paths == [tmp_path / "final_vs_batch.png"]
    _assert_real_png(paths[0])


def test_final_vs_batch_without_finished_runs_still_writes(study_dir: Path, tmp_path: Path) -> None:
    live = [r for r in load_study(study_dir) if r.status.name == "running"]
    assert len(live) == 1
    _assert_real_png(plot_final_vs_batch(live, tmp_path)[0])


def test_final_by_batch_aggregates_seeds_and_skips_live(study_dir: Path) -> None:
    table = runs_table(load_study(study_dir))
    stats = final_by_batch(table)
    # The live run (base lr 0.05) is left out; 3 batches at lr 0.1 remain.
    assert stats["base_lr"].tolist() == [0.1, 0.1, 0.1]
    assert stats["global_batch"].tolist() == [32, 64, 128]
    assert stats["seeds"].tolist() == [2, 2, 2]
    b64 = table[(table["global_batch"] == 64) & (table["status"] == "completed")]
    row = stats[stats["global_batch"] == 64].iloc[0]
    assert row["val_acc_mean"] == pytest.approx(b64["final_val_acc"].mean())
    assert row["val_acc_min"] == pytest.approx(b64["final_val_acc"].min())
    assert row["val_acc_max"] == pytest.approx(b64["final_val_acc"].max())
    assert row["val_acc_max"] - row["val_acc_min"] == pytest.approx(0.005)
    assert row["gap_mean"] == pytest.approx(b64["gap"].mean())


def test_plots_survive_diverged_run(study_dir: Path, tmp_path: Path) -> None:
    import h5py

    path = study_dir / "runs" / "b64-s0.h5"
    with h5py.File(path, "r+") as f:
        loss = f["train/loss"][...]
        loss[40] = np.inf
        loss[41:] = np.nan
        f["train/loss"][...] = loss
        f["eval/val_loss"][-1] = np.nan
        f["eval/val_acc"][-1] = np.nan
        f["status/code"][0] = 2
    runs = load_study(study_dir)
    for plot in (plot_loss_vs_samples, plot_final_vs_batch):
        _assert_real_png(plot(runs, tmp_path)[0])
    row = runs_table(runs).set_index("run").loc["b64-s0"]
    assert row["status"] == "diverged"
    assert np.isnan(row["final_val_acc"]) and not np.isnan(row["best_val_acc"])
