"""Loading run files and the per-run table, checked against the synthetic curves."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from synthetic_runs import (
    EMA_BETA,
    LAYER_NUMEL,
    LAYER_SHARE,
    LAYERS,
    STUDY_SPECS,
    TRAIN_SIZE,
    RunSpec,
    raw_norms,
    reference_estimates,
    train_acc,
    train_loss_eval,
    val_acc,
    val_loss,
    wall_s,
)

from batchscope_analysis.errors import RunFileError
from batchscope_analysis.noise import DEFAULT_EMA_SAMPLES
from batchscope_analysis.load import (
    RUNS_TABLE_COLUMNS,
    eval_table,
    find_runs,
    load_run,
    load_study,
    runs_table,
    train_table,
)
from batchscope_analysis.schema import check_run_file


def test_find_runs_in_study_dir_file_and_flat_dir(study_dir: Path, tmp_path: Path) -> None:
    found = find_runs(study_dir)
    assert sorted(p.stem for p in found) == sorted(s.name for s in STUDY_SPECS)

    single = study_dir / "runs" / "b32-s0.h5"
    assert find_runs(single) == [single]

    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(single, flat / "copy.h5")
    both = find_runs([study_dir, flat, single])
    # The file named again after its folder is not listed twice.
    assert len(both) == len(STUDY_SPECS) + 1
    assert both[-1] == flat / "copy.h5"


def test_find_runs_rejects_missing_and_empty(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(RunFileError) as info:
        find_runs(missing)
    assert info.value.path == missing
    with pytest.raises(RunFileError, match="no run files"):
        find_runs(tmp_path)


def test_load_run_completed(study_dir: Path, specs: dict[str, RunSpec]) -> None:
    spec = specs["b128-s1"]
    run = load_run(study_dir / "runs" / "b128-s1.h5")
    assert run.name == "b128-s1"
    assert run.attrs["global_batch"] == 128 and run.attrs["ranks"] == 2
    assert run.attrs["schema"] == "batchscope-run" and isinstance(run.attrs["study"], str)
    assert run.layout["batch_per_rank"].tolist() == [48, 80]
    assert run.layout["hosts"] == ["node0", "node1"]
    assert run.layout["train_size"] == TRAIN_SIZE
    assert tuple(run.status) == ("completed", spec.total_steps)

    assert len(run.train) == len(run.gns) == spec.total_steps
    assert {"loss_rank_0", "loss_rank_1"} <= set(run.train.columns)
    assert "loss_rank" not in run.train.columns
    np.testing.assert_array_equal(run.train["samples"], run.train["step"] * 128)
    # The global loss is the batch-weighted mean of the per-rank losses.
    weighted = (48 * run.train["loss_rank_0"] + 80 * run.train["loss_rank_1"]) / 128
    np.testing.assert_allclose(weighted, run.train["loss"], rtol=1e-5)
    np.testing.assert_array_equal(run.gns["step"], run.train["step"])
    assert run.eval["step"].tolist() == spec.eval_steps() == [0, 10, 20, 30, 40, 50, 60, 64]
    # Version 2: micro-batches (m = 3, uneven), flattened like the per-rank columns.
    assert run.microbatches == 3
    assert run.batch_micro.tolist() == [16, 16, 16, 27, 27, 26]
    assert run.sqnorm_micro().shape == (spec.total_steps, 6)
    assert run.layout["layers"] == ["fc0.weight", "fc0.bias", "fc1.weight"]
    assert run.layer_norms is None
    assert tuple(run.target) == (-1, -1) and run.own_target is None


def test_load_run_live(study_dir: Path) -> None:
    run = load_run(study_dir / "runs" / "b64-s2-live.h5")
    assert tuple(run.status) == ("running", 23)
    assert len(run.train) == 23
    assert run.eval["step"].tolist() == [0, 10, 20]


def test_load_run_cuts_to_rows_present_everywhere(study_dir: Path) -> None:
    path = study_dir / "runs" / "b64-s0.h5"
    with h5py.File(path, "r+") as f:
        f["gns/b_simple"].resize(60, axis=0)  # as if caught mid-append
    run = load_run(path)
    assert len(run.train) == len(run.gns) == 60
    assert run.train["step"].iloc[-1] == 60


def test_load_run_malformed_names_file(study_dir: Path) -> None:
    path = study_dir / "runs" / "b32-s0.h5"
    with h5py.File(path, "r+") as f:
        del f["train/wall_s"]
    with pytest.raises(RunFileError, match="wall_s") as info:
        load_run(path)
    assert info.value.path == path


def test_runs_table_matches_synthetic_values(study_dir: Path, specs: dict[str, RunSpec]) -> None:
    table = runs_table(load_study(study_dir))
    assert list(table.columns) == list(RUNS_TABLE_COLUMNS)
    assert sorted(table["run"]) == sorted(specs)
    for row in table.itertuples(index=False):
        spec = specs[row.run]
        last = float(spec.eval_steps()[-1] * spec.global_batch)
        all_evals = np.array(spec.eval_steps(), dtype=float) * spec.global_batch
        assert row.study == "synthetic"
        assert (row.global_batch, row.ranks, row.seed) == (spec.global_batch, spec.ranks, spec.seed)
        assert row.base_lr == pytest.approx(spec.base_lr)
        assert row.peak_lr == pytest.approx(spec.peak_lr)
        assert row.status == spec.status
        assert row.steps == spec.steps
        assert row.samples == spec.steps * spec.global_batch
        assert row.final_val_acc == pytest.approx(float(val_acc(spec, last)))
        assert row.best_val_acc == pytest.approx(float(np.max(val_acc(spec, all_evals))))
        assert row.final_train_acc == pytest.approx(float(train_acc(spec, last)))
        assert row.gap == pytest.approx(float(train_acc(spec, last) - val_acc(spec, last)))
        assert row.final_val_loss == pytest.approx(float(val_loss(spec, last)))
        assert row.final_train_loss == pytest.approx(float(train_loss_eval(spec, last)))
        expected_rate = spec.steps * spec.global_batch / float(wall_s(spec, np.float64(spec.steps)))
        assert row.samples_per_s == pytest.approx(expected_rate)


def test_best_differs_from_final_when_accuracy_drops(study_dir: Path) -> None:
    table = runs_table(load_study(study_dir)).set_index("run")
    # Guards the test above against a fixture where best == final everywhere.
    assert table.loc["b32-s0", "best_val_acc"] > table.loc["b32-s0", "final_val_acc"] + 0.01
    assert table.loc["b128-s0", "best_val_acc"] == pytest.approx(table.loc["b128-s0", "final_val_acc"])


def test_load_per_layer_norms(study_dir: Path) -> None:
    run = load_run(study_dir / "runs" / "b128-s0.h5")
    layers = run.layer_norms
    assert layers is not None
    assert layers.names == list(LAYERS) and layers.numel.tolist() == list(LAYER_NUMEL)
    assert layers.micro.shape == (len(run.gns), 6, 3) and layers.global_.shape == (len(run.gns), 3)
    np.testing.assert_allclose(layers.micro.sum(axis=2), run.sqnorm_micro(), rtol=1e-6)
    np.testing.assert_allclose(layers.global_.sum(axis=1), run.gns["sqnorm_global"], rtol=1e-6)
    # Column k*L + l is micro-batch k, layer l.
    np.testing.assert_allclose(layers.micro[:, 1, 2] / run.sqnorm_micro()[:, 1], LAYER_SHARE[2], rtol=1e-6)


def test_runs_table_noise_columns(study_dir: Path, specs: dict[str, RunSpec]) -> None:
    table = runs_table(load_study(study_dir)).set_index("run")
    for name, spec in specs.items():
        row = table.loc[name]
        assert row["microbatches"] == spec.microbatches
        # Re-smoothed from the raw norms over the study's window in samples (one factor per
        # run, exp(-B / window)), the reference transcription of docs/metrics.md.
        _local, micro, glob = raw_norms(spec)
        beta = math.exp(-sum(spec.batch_micro) / DEFAULT_EMA_SAMPLES)
        _g2, _tr, b_simple = reference_estimates(spec.batch_micro, micro, glob, TRAIN_SIZE, beta)
        finite = np.flatnonzero(np.isfinite(b_simple))
        assert row["b_simple_final"] == pytest.approx(b_simple[finite[-1]])
        steps = np.arange(1, spec.steps + 1)
        late = np.isfinite(b_simple) & (steps > spec.steps / 2)
        assert row["b_simple_median"] == pytest.approx(np.median(b_simple[late]))
    assert table.loc["b64-s0", "b_simple_median"] > 0


def test_version_1_file_still_loads(study_dir: Path) -> None:
    path = study_dir / "runs" / "b64-s0.h5"
    before = load_run(path)
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = np.int64(1)
        for name in ("microbatches", "target_metric", "target_value", "target_stop"):
            del f.attrs[name]
        for name in ("layout/batch_micro", "layout/layers", "layout/layer_numel", "gns/sqnorm_micro", "target"):
            del f[name]
    assert "root attribute 'schema_version' is 1, expected one of 2, 3" in check_run_file(path)
    run = load_run(path)
    assert run.microbatches == 1 and run.own_target is None and tuple(run.target) == (-1, -1)
    assert run.batch_micro.tolist() == [32, 32]
    np.testing.assert_array_equal(run.sqnorm_micro(), before.sqnorm_micro())
    row = runs_table([run]).iloc[0]
    assert row["target_metric"] == "none" and np.isnan(row["steps_to_target"])
    assert row["b_simple_median"] == pytest.approx(runs_table([before]).iloc[0]["b_simple_median"])


def test_tidy_tables(study_dir: Path, specs: dict[str, RunSpec]) -> None:
    runs = load_study(study_dir)
    train = train_table(runs)
    assert len(train) == sum(s.steps for s in specs.values())
    assert {"run", "global_batch", "base_lr", "seed", "step", "loss", "b_simple", "sqnorm_global"} <= set(train.columns)
    b32 = train[train["run"] == "b32-s0"]
    assert (b32["global_batch"] == 32).all() and b32["step"].tolist() == list(range(1, 257))
    evals = eval_table(runs)
    assert len(evals) == sum(len(s.eval_steps()) for s in specs.values())
    np.testing.assert_allclose(evals["gap"], evals["train_acc"] - evals["val_acc"])
