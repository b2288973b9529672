"""Targets, steps-to-target per run and per batch, and the S(B) fit."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from synthetic_runs import B_CRIT, E_MIN, S_MIN, TARGET_VALUE, RunSpec, steps_to_target_truth

from batchscope_analysis.load import load_run, load_study, runs_table
from batchscope_analysis.scaling import best_by_batch, fit_steps_vs_batch, fit_study, target_table
from batchscope_analysis.target import Target, parse_target, steps_to_target, study_target

TARGET = Target("val_error", TARGET_VALUE)


def test_parse_target() -> None:
    assert parse_target("val_error=0.15") == Target("val_error", 0.15)
    assert parse_target("val_acc=0.9").describe() == "val_acc >= 0.9"
    assert parse_target("train_loss=0.3").describe() == "train_loss <= 0.3"
    for bad, message in (("val_error", "METRIC=VALUE"), ("val_error=x", "not a number"),
                         ("accuracy=0.9", "unknown target metric"), ("val_acc=nan", "finite")):
        with pytest.raises(ValueError, match=message):
            parse_target(bad)


def test_fit_exact_data_recovers_exactly() -> None:
    batch = np.array([16, 32, 64, 128, 256, 512, 1024], dtype=float)
    fit = fit_steps_vs_batch(batch, 50.0 + 8000.0 / batch)
    assert fit.ok and fit.reason == ""
    assert fit.s_min == pytest.approx(50.0, rel=1e-12)
    assert fit.e_min == pytest.approx(8000.0, rel=1e-12)
    assert fit.b_crit == pytest.approx(160.0, rel=1e-12)
    assert fit.rel_rms < 1e-12 and fit.n_points == 7
    # The curve for plotting spans the data and follows the fitted law.
    assert fit.curve_b.min() < 16 and fit.curve_b.max() > 1024
    np.testing.assert_allclose(fit.curve_s, 50.0 + 8000.0 / fit.curve_b, rtol=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_fit_noisy_data_within_tolerance(seed: int) -> None:
    # 2 % relative noise on steps, 8 batch sizes spanning B_crit: S_min and
    # E_min within 5 %, B_crit within 8 % (their errors add).
    rng = np.random.default_rng(seed)
    batch = 2.0 ** np.arange(4, 12)
    steps = (30.0 + 12000.0 / batch) * (1.0 + 0.02 * rng.standard_normal(batch.size))
    fit = fit_steps_vs_batch(batch, steps)
    assert fit.ok
    assert fit.s_min == pytest.approx(30.0, rel=0.05)
    assert fit.e_min == pytest.approx(12000.0, rel=0.05)
    assert fit.b_crit == pytest.approx(400.0, rel=0.08)
    assert 0.005 < fit.rel_rms < 0.05


def test_fit_rejects_unphysical_and_too_few_points() -> None:
    batch = np.array([16.0, 32.0, 64.0, 128.0, 256.0])
    # Steps fall faster than 1/B: S_min < 0, B_crit beyond the largest batch.
    fit = fit_steps_vs_batch(batch, 5000.0 / batch - 2.0)
    assert not fit.ok and math.isnan(fit.b_crit) and math.isnan(fit.s_min)
    assert "S_min" in fit.reason and "above" in fit.reason and fit.curve_b.size == 0
    # Steps grow with batch: E_min < 0.
    fit = fit_steps_vs_batch(batch, 50.0 - 1000.0 / batch)
    assert not fit.ok and "E_min" in fit.reason and "below" in fit.reason
    # Runs that never reached the target (NaN) do not count as points.
    fit = fit_steps_vs_batch([32, 64, 128], [100.0, 60.0, float("nan")])
    assert not fit.ok and "only 2 global batch sizes" in fit.reason
    with pytest.raises(ValueError):
        fit_steps_vs_batch([1, 2], [1.0])


def test_steps_to_target_from_eval_rows(study_dir: Path, specs: dict[str, RunSpec]) -> None:
    for name in ("b32-s0", "b64-s1", "b256-s0"):
        run = load_run(study_dir / "runs" / f"{name}.h5")
        assert run.own_target is None
        hit = steps_to_target(run, TARGET)
        assert hit.source == "/eval"
        assert hit.step == steps_to_target_truth(specs[name])
        assert hit.samples == hit.step * run.global_batch
        # No target given and none stored: nothing to measure.
        assert steps_to_target(run).source == "no target" and not steps_to_target(run).reached
    never = steps_to_target(load_run(study_dir / "runs" / "b256-s1.h5"), TARGET)
    assert not never.reached and math.isnan(never.samples)


def test_steps_to_target_prefers_stored_target(study_dir: Path) -> None:
    path = study_dir / "runs" / "b128-s0.h5"
    run = load_run(path)
    assert run.own_target == TARGET and tuple(run.target) == (40, 5120)
    assert steps_to_target(run).source == "/target"
    # Make /target disagree with the eval rows to see which one is used.
    with h5py.File(path, "r+") as f:
        f["target/step"][0] = 30
        f["target/samples"][0] = 30 * 128
    run = load_run(path)
    for asked in (None, Target("val_error", 0.15)):
        hit = steps_to_target(run, asked)
        assert (hit.step, hit.samples, hit.source) == (30, 3840, "/target")
    # A different target than the stored one is answered from the eval rows.
    other = steps_to_target(run, Target("val_acc", 0.85))
    assert other.source == "/eval" and other.step == 40
    # "Not reached" stored (-1): the eval rows are searched.
    with h5py.File(path, "r+") as f:
        f["target/step"][0] = -1
        f["target/samples"][0] = -1
    hit = steps_to_target(load_run(path))
    assert (hit.step, hit.source) == (40, "/eval")


def test_target_table_and_best_by_batch(study_dir: Path) -> None:
    table = target_table(load_study(study_dir), TARGET)
    assert len(table) == 9
    best = best_by_batch(table).set_index("global_batch")
    assert best["steps_to_target"].to_dict() == {32: 100, 64: 60, 128: 40, 256: 30}
    assert best["samples_to_target"].to_dict() == {32: 3200, 64: 3840, 128: 5120, 256: 7680}
    assert best["run"].to_dict() == {32: "b32-s0", 64: "b64-s0", 128: "b128-s0", 256: "b256-s0"}
    assert best["runs"].to_dict() == {32: 2, 64: 3, 128: 2, 256: 2}
    assert best["reached"].to_dict() == {32: 2, 64: 2, 128: 2, 256: 1}
    # All runs, ordered by (lr, seed): the live lr-0.05 run has not reached it.
    all_64 = best.loc[64, "all_steps"]
    assert math.isnan(all_64[0]) and all_64[1:] == [60.0, 70.0]


def test_fit_study_recovers_synthetic_b_crit(study_dir: Path) -> None:
    _table, _best, fit = fit_study(load_study(study_dir), TARGET)
    assert fit.ok, fit.reason
    assert (fit.s_min, fit.e_min) == (pytest.approx(S_MIN, rel=1e-9), pytest.approx(E_MIN, rel=1e-9))
    assert fit.b_crit == pytest.approx(B_CRIT, rel=1e-9)
    _t, _b, unreachable = fit_study(load_study(study_dir), Target("val_error", 0.01))
    assert not unreachable.ok and unreachable.reason == "no run reached the target (val_error <= 0.01)"


def test_study_target_resolution(study_dir: Path) -> None:
    runs = load_study(study_dir)
    target, note = study_target(runs)
    assert target == TARGET and note == "val_error <= 0.15 (declared in 1 of 9 run files)"
    given, note = study_target(runs, Target("val_acc", 0.8))
    assert given == Target("val_acc", 0.8) and "command line" in note
    # Stored targets that disagree: no study target, and the note says so.
    with h5py.File(study_dir / "runs" / "b32-s0.h5", "r+") as f:
        f.attrs["target_metric"] = "val_acc"
        f.attrs["target_value"] = 0.9
    target, note = study_target(load_study(study_dir))
    assert target is None and "different targets" in note and "--target" in note
    # None declared.
    for name in ("b32-s0", "b128-s0"):
        with h5py.File(study_dir / "runs" / f"{name}.h5", "r+") as f:
            f.attrs["target_metric"] = "none"
            f.attrs["target_value"] = float("nan")
            f["target/step"][0] = -1
            f["target/samples"][0] = -1
    target, note = study_target(load_study(study_dir))
    assert target is None and "no run file declares a target" in note


def test_runs_table_target_columns(study_dir: Path, specs: dict[str, RunSpec]) -> None:
    own = runs_table(load_study(study_dir)).set_index("run")
    # Each run's own target: only b128-s0 has one.
    assert own.loc["b128-s0", "target_metric"] == "val_error"
    assert own.loc["b128-s0", "target_value"] == pytest.approx(0.15)
    assert own.loc["b128-s0", "steps_to_target"] == 40
    assert own.loc["b32-s0", "target_metric"] == "none" and math.isnan(own.loc["b32-s0", "steps_to_target"])
    given = runs_table(load_study(study_dir), TARGET).set_index("run")
    for name, spec in specs.items():
        truth = steps_to_target_truth(spec)
        row = given.loc[name]
        assert row["target_metric"] == "val_error"
        if truth <= spec.steps:
            assert row["steps_to_target"] == truth
            assert row["samples_to_target"] == truth * spec.global_batch
        else:
            assert math.isnan(row["steps_to_target"]) and math.isnan(row["samples_to_target"])
