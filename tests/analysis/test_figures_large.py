"""Figures at real study sizes: a 100-run study (10 batches x 5 lrs x 2 seeds, two
diverged runs) and a 32-run one-seed sweep (8 batches x 4 lrs), built with the
synthetic writer and then given lr-dependent results and blow-ups."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import pytest
from matplotlib.figure import Figure

from matplotlib.text import Text
from synthetic_runs import STATUS_CODES, TARGET, RunSpec, write_run_file
from test_plots import assert_readable

from batchscope_analysis.load import Run, load_study
from batchscope_analysis.plots import ALL_FIGURES, FINAL_FIGURE, LOSS_FIGURE, build_figures, figure_note


# Huge losses of the diverged runs: a figure scaled to them would squash every other run.
DIVERGED_LOSS: float = 1e5
LARGE_BATCHES: tuple[int, ...] = tuple(4 * 2**k for k in range(10))  # 4 .. 2048
LARGE_LRS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.2, 0.4)
SWEEP_BATCHES: tuple[int, ...] = tuple(16 * 2**k for k in range(8))  # 16 .. 2048
SWEEP_LRS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)


def _split(batch: int) -> tuple[int, ...]:
    return (batch // 2, batch - batch // 2) if batch >= 64 else (batch,)


def best_lr_truth(batch: int, lrs: Sequence[float]) -> float:
    """The lr the synthetic results favour: ~0.05 sqrt(B/32), on the grid."""
    ideal = 0.05 * math.sqrt(batch / 32)
    return min(lrs, key=lambda lr: abs(math.log2(lr / ideal)))


def write_sweep(root: Path, batches: Sequence[int], lrs: Sequence[float], seeds: Sequence[int],
                diverged: Sequence[tuple[int, float, int]] = (), study: str = "large") -> Path:
    """One run per (batch, lr, seed): accuracy falls 2 points per factor 2 away from
    best_lr_truth, training loss rises with it; `diverged` runs blow up to
    DIVERGED_LOSS, then NaN, with status diverged."""
    runs = root / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (root / "study.yaml").write_text(f"name: {study}\n")
    for batch in batches:
        for lr in lrs:
            for seed in seeds:
                name = f"b{batch}-lr{lr:g}-s{seed}"
                # More epochs at the largest batches (one step per epoch at B = 2048) so they take dozens of steps.
                epochs = 4 if batch <= 256 else 4 * batch // 256
                off = abs(math.log2(lr / best_lr_truth(batch, lrs)))
                # Sharpness grows with the batch and away from the best lr, so the sharpness figures have
                # every kind of line to draw.
                sharp = 5.0 * (batch / 32) ** 0.3 * (1.0 + 0.2 * off) * (1.0 + 0.05 * seed)
                spec = RunSpec(name, _split(batch), seed, lr, epochs=min(epochs, 32), microbatches=2,
                               target=TARGET, sharpness=sharp)
                path = write_run_file(runs / f"{name}.h5", spec, study=study)
                with h5py.File(path, "r+") as f:
                    f["train/loss"][...] = f["train/loss"][...] * (1.0 + 0.15 * off)
                    f["eval/val_acc"][...] = f["eval/val_acc"][...] - 0.02 * off
                    f["eval/train_acc"][...] = f["eval/train_acc"][...] - 0.02 * off
                    f["eval/val_loss"][...] = f["eval/val_loss"][...] + 0.04 * off
                    if (batch, lr, seed) in diverged:
                        _blow_up(f)
    return root


def _blow_up(f: h5py.File) -> None:
    loss = f["train/loss"][...]
    n = len(loss)
    start = n // 2
    grow = np.geomspace(loss[start], DIVERGED_LOSS, n - start - 2)
    loss[start:n - 2] = grow
    loss[n - 2:] = np.nan
    f["train/loss"][...] = loss
    val = f["eval/val_loss"][...]
    half = len(val) // 2
    val[half:] = np.geomspace(max(val[half], 1.0), DIVERGED_LOSS, len(val) - half)
    val[-1] = np.nan
    f["eval/val_loss"][...] = val
    acc = f["eval/val_acc"][...]
    acc[half:] = 0.1
    acc[-1] = np.nan
    f["eval/val_acc"][...] = acc
    f["status/code"][0] = STATUS_CODES["diverged"]


LARGE_DIVERGED: tuple[tuple[int, float, int], ...] = ((8, 0.4, 0), (1024, 0.4, 1))


@pytest.fixture(scope="module")
def large_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Run]:
    root = write_sweep(tmp_path_factory.mktemp("large") / "study", LARGE_BATCHES, LARGE_LRS, (0, 1),
                       LARGE_DIVERGED)
    return load_study(root)


@pytest.fixture(scope="module")
def sweep_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Run]:
    root = write_sweep(tmp_path_factory.mktemp("sweep") / "study", SWEEP_BATCHES, SWEEP_LRS, (0,),
                       ((16, 0.4, 0), (2048, 0.4, 0)), study="sweep32")
    return load_study(root)


@pytest.fixture(scope="module")
def large_figures(large_runs: list[Run]) -> dict[str, Figure]:
    return build_figures(large_runs)


def test_large_study_has_100_runs_two_diverged(large_runs: list[Run]) -> None:
    assert len(large_runs) == 100
    assert sorted(r.name for r in large_runs if r.status.name == "diverged") == ["b1024-lr0.4-s1", "b8-lr0.4-s0"]


def test_large_study_figures_are_readable(large_figures: dict[str, Figure]) -> None:
    assert list(large_figures) == list(ALL_FIGURES)
    for name, fig in large_figures.items():
        assert figure_note(fig) is None, name
        assert_readable(fig, name)


def test_diverged_runs_do_not_set_the_loss_limits(large_runs: list[Run], large_figures: dict[str, Figure]) -> None:
    fig = large_figures[LOSS_FIGURE]
    train, val = fig.axes[0], fig.axes[1]
    worst = max(float(np.nanmax(r.train["loss"].to_numpy(dtype=float))) for r in large_runs
                if r.status.name != "diverged")
    for ax in (train, val):
        low, high = ax.get_ylim()
        assert high < 2.0 * worst < DIVERGED_LOSS / 1e3
        assert low > 0.1
    # Each diverged run is marked where it leaves the panel: a red x inside the limits.
    for ax in (train, val):
        crosses = [line for line in ax.get_lines() if line.get_marker() == "x"]
        assert len(crosses) == len(LARGE_DIVERGED)
        for line in crosses:
            assert ax.get_ylim()[0] <= line.get_ydata()[0] <= ax.get_ylim()[1]


def test_best_lr_per_batch_in_full_colour(large_runs: list[Run], large_figures: dict[str, Figure]) -> None:
    from batchscope_analysis.tuning import tuning_study

    best = {b: t.lr for b, t in tuning_study(large_runs, draws=1).per_batch.items()}
    assert len(set(best.values())) >= 3  # the best lr moves with the batch
    ax = large_figures[LOSS_FIGURE].axes[0]
    solid = [line for line in ax.get_lines() if line.get_alpha() in (None, 1.0) and line.get_linestyle() == "-"]
    faint = [line for line in ax.get_lines() if line.get_alpha() is not None and line.get_alpha() < 0.5]
    # 10 batches x 2 seeds at the best lr; the other 78 runs (2 diverged) faint.
    assert len(solid) == 20 and len(faint) == 78
    colorbar = large_figures[LOSS_FIGURE].axes[-1]
    ticks = [t.get_text() for t in colorbar.get_yticklabels()]
    assert ticks[0] == f"4: lr {best[4]:g}" and ticks[-1] == f"2048: lr {best[2048]:g}"
    final = large_figures[FINAL_FIGURE]
    assert "range over 2 seeds" in "\n".join(t.get_text() for t in final.findobj(Text))


def test_one_seed_sweep_claims_no_range(sweep_runs: list[Run], tmp_path: Path) -> None:
    assert len(sweep_runs) == 32
    figures = build_figures(sweep_runs)
    for name, fig in figures.items():
        assert_readable(fig, name)
    final = figures[FINAL_FIGURE]
    texts = "\n".join(t.get_text() for t in final.findobj(Text))
    assert "range" not in texts
    assert all("%" in ax.get_ylabel() for ax in final.axes[:3])
    # A one-seed batch has no bar: the only vertical segments would be seed ranges.
    for ax in final.axes[:3]:
        for line in ax.get_lines():
            x = np.asarray(line.get_xdata(), dtype=float)
            assert not (len(x) == 2 and x[0] == x[1]), "a range bar with one seed"
    ylim = figures[LOSS_FIGURE].axes[1].get_ylim()
    assert ylim[1] < 10.0
