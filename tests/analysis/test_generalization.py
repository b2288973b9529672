"""Accuracy at equal epochs, per batch at the best lr, and the trend of the generalization gap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic_runs import EPOCHS, STOP_SPEC, TARGET, TRAIN_SIZE, RunSpec, gap_at, val_acc, write_run_file

from batchscope_analysis.generalization import equal_epochs, gap_trend, slope_per_doubling
from batchscope_analysis.load import load_run, load_study


def test_equal_epochs_matches_synthetic(study_dir: Path, specs: dict[str, RunSpec]) -> None:
    equal = equal_epochs(load_study(study_dir))
    assert equal.epoch == EPOCHS
    assert equal.excluded == {"status running": 1}
    assert sorted(equal.per_run["run"]) == sorted(n for n, s in specs.items() if s.status == "completed")
    by_batch = equal.by_batch.set_index("global_batch")
    assert by_batch.index.tolist() == [32, 64, 128, 256]
    samples = EPOCHS * TRAIN_SIZE
    for batch, row in by_batch.iterrows():
        seeds = [s for s in specs.values() if s.global_batch == batch and s.status == "completed"]
        accs = [float(val_acc(s, samples)) for s in seeds]
        assert row["val_acc_mean"] == pytest.approx(np.mean(accs))
        assert (row["val_acc_min"], row["val_acc_max"]) == (pytest.approx(min(accs)), pytest.approx(max(accs)))
        assert row["gap_mean"] == pytest.approx(np.mean([gap_at(s, samples) for s in seeds]))
        assert row["seeds"] == 2 and row["base_lr"] == 0.1
    # The synthetic study is built so that B=64 wins at equal epochs.
    assert by_batch["val_acc_mean"].idxmax() == 64


def test_equal_epochs_interpolates_to_common_epoch(study_dir: Path) -> None:
    runs = load_study(study_dir)
    short = next(r for r in runs if r.name == "b64-s0")
    # Cut one run's evaluations at 2.5 epochs: everyone is compared there.
    short.eval = short.eval[short.eval["epoch"] <= 2.5].reset_index(drop=True)
    equal = equal_epochs(runs)
    assert equal.epoch == pytest.approx(float(short.eval["epoch"].iloc[-1]))
    row = equal.per_run.set_index("run").loc["b32-s0"]
    evals = next(r for r in runs if r.name == "b32-s0").eval
    expected = np.interp(equal.epoch, evals["epoch"], evals["val_acc"])
    assert row["val_acc"] == pytest.approx(expected)


def test_runs_stopped_at_target_are_left_out(study_dir: Path) -> None:
    write_run_file(study_dir / "runs" / "b64-stop.h5", STOP_SPEC)
    runs = load_study(study_dir)
    stop = next(r for r in runs if r.name == "b64-stop")
    assert stop.status.name == "completed" and len(stop.train) == 60  # it stopped at its target
    equal = equal_epochs(runs)
    assert equal.excluded == {"status running": 1, "stopped at the target": 1}
    assert equal.epoch == EPOCHS  # not dragged down to the stopped run's epoch


def test_gap_trend(study_dir: Path) -> None:
    trend = gap_trend(equal_epochs(load_study(study_dir)).by_batch)
    # Synthetic gap at 4 epochs: 0.02 * (1 + log2(B / 32)): +2 points per doubling.
    assert trend.batches == [32, 64, 128, 256]
    assert trend.per_doubling == pytest.approx(0.02)
    assert trend.change == pytest.approx(0.06)
    assert trend.direction == "grows"
    one = gap_trend(equal_epochs(load_study(study_dir)).by_batch.iloc[:1])
    assert one.direction == "unknown"


def test_study_where_every_run_stopped_at_target(tmp_path: Path) -> None:
    # A steps-to-result study: all runs stop at the target, so they are
    # compared up to the epoch where the first one stopped.
    specs = [RunSpec(f"b{b}-stop", (b // 2, b // 2), 0, 0.1, target=TARGET, target_stop=True) for b in (64, 128)]
    paths = [write_run_file(tmp_path / f"{s.name}.h5", s) for s in specs]
    runs = [load_run(p) for p in paths]
    equal = equal_epochs(runs)
    assert equal.excluded == {} and "stopped at its target" in equal.note
    # b64 stops at step 60 (1.875 epochs), b128 at step 40 (2.5 epochs).
    assert equal.epoch == pytest.approx(60 * 64 / TRAIN_SIZE)
    assert len(equal.per_run) == 2


def test_a_learning_rate_that_diverged_on_any_seed_is_not_a_batch_best(study_dir: Path) -> None:
    # B=64: lr 0.1 (seeds 0 and 1 completed, the better lr: lr 0.05 learns slower) diverged on seed 2.
    write_run_file(study_dir / "runs" / "b64-s2-div.h5",
                   RunSpec("b64-s2-div", (32, 32), 2, 0.1, status="diverged", steps_written=30))
    write_run_file(study_dir / "runs" / "b64-slow.h5", RunSpec("b64-slow", (32, 32), 0, 0.05))
    runs = load_study(study_dir)
    before = equal_epochs([r for r in runs if r.name != "b64-s2-div"]).by_batch.set_index("global_batch")
    assert before.loc[64, "base_lr"] == 0.1  # the better lr, while it has not diverged
    equal = equal_epochs(runs)
    assert equal.diverged_runs == ("b64-s2-div",) and equal.diverged_lrs == ((64, 0.1),)
    assert {"b64-s0", "b64-s1"} <= set(equal.per_run["run"])  # its completed seeds are still reported
    assert equal.by_batch.set_index("global_batch").loc[64, "base_lr"] == 0.05


def test_slope_per_doubling_is_the_least_squares_slope() -> None:
    batches, values = [16, 64, 128, 1024], [0.01, 0.035, 0.03, 0.09]
    expected = np.polyfit(np.log2(batches), values, 1)[0]
    assert slope_per_doubling(batches, values) == pytest.approx(expected)
    assert np.isnan(slope_per_doubling([64, 64], [0.1, 0.2]))
