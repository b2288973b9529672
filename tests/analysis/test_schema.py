"""The schema checker accepts valid files and names each kind of corruption."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
from synthetic_runs import SINGLE_SPEC, STOP_SPEC, STUDY_SPECS, TARGET, RunSpec, write_run_file

from batchscope_analysis.errors import RunFileError
from batchscope_analysis.schema import OPTIONAL_ROOT_ATTRS, ROOT_ATTRS, check_run_file


def test_every_synthetic_run_is_valid(study_dir: Path) -> None:
    files = sorted((study_dir / "runs").glob("*.h5"))
    assert len(files) == len(STUDY_SPECS)
    for path in files:
        assert check_run_file(path) == [], path


def test_file_without_swmr_or_latest_format_is_readable(tmp_path: Path) -> None:
    path = write_run_file(tmp_path / "plain.h5", STUDY_SPECS[0], swmr=False)
    assert check_run_file(path) == []


def test_non_hdf5_file_raises_run_file_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.h5"
    path.write_text("not hdf5")
    with pytest.raises(RunFileError) as info:
        check_run_file(path)
    assert info.value.path == path


def _delete(name: str) -> Callable[[h5py.File], None]:
    def mutate(f: h5py.File) -> None:
        del f[name]

    return mutate


def _set_attr(name: str, value: object) -> Callable[[h5py.File], None]:
    def mutate(f: h5py.File) -> None:
        f.attrs[name] = value

    return mutate


def _drop_last_gns_row(f: h5py.File) -> None:
    ds = f["gns/sqnorm_global"]
    ds.resize(ds.shape[0] - 1, axis=0)


def _repeat_step(f: h5py.File) -> None:
    f["train/step"][5] = f["train/step"][4]


def _shift_samples(f: h5py.File) -> None:
    f["train/samples"][3] += 1


def _steps_from_two(f: h5py.File) -> None:
    step = f["train/step"][...]
    f["train/step"][...] = step + 1
    f["train/samples"][...] = (step + 1) * int(f.attrs["global_batch"])


def _eval_goes_back(f: h5py.File) -> None:
    f["eval/step"][2] = 0
    f["eval/samples"][2] = 0


def _uneven_layout(f: h5py.File) -> None:
    f["layout/batch_per_rank"][0] += 1


def _bad_status(f: h5py.File) -> None:
    f["status/code"][0] = 7


def _loss_as_int(f: h5py.File) -> None:
    rows = f["train/loss"].shape[0]
    del f["train/loss"]
    f["train/loss"] = np.zeros(rows, dtype=np.int64)


def _one_rank_loss_columns(f: h5py.File) -> None:
    data = f["train/loss_rank"][:, :1]
    del f["train/loss_rank"]
    f["train/loss_rank"] = data


def _replace(name: str, make: Callable[[np.ndarray], np.ndarray]) -> Callable[[h5py.File], None]:
    """Rewrites a dataset with new contents (e.g. another width)."""

    def mutate(f: h5py.File) -> None:
        data = make(f[name][()])
        del f[name]
        f[name] = data

    return mutate


def _set(name: str, index: tuple, value: object) -> Callable[[h5py.File], None]:
    def mutate(f: h5py.File) -> None:
        f[name][index] = value

    return mutate


def _target_at(step: int) -> Callable[[h5py.File], None]:
    def mutate(f: h5py.File) -> None:
        f["target/step"][0] = step
        f["target/samples"][0] = step * int(f.attrs["global_batch"])

    return mutate


def _double_layer_norm(f: h5py.File) -> None:
    f["gns/sqnorm_layer_global"][3, 0] *= 2


def _no_target_but_step(f: h5py.File) -> None:
    f.attrs["target_metric"] = "none"
    f.attrs["target_value"] = float("nan")


CORRUPTIONS: list[tuple[str, Callable[[h5py.File], None], str]] = [
    ("missing dataset", _delete("gns/b_simple"), "missing dataset '/gns/b_simple'"),
    ("missing group", _delete("eval"), "missing group '/eval'"),
    ("wrong schema", _set_attr("schema", "batchscope-trace"), "expected 'batchscope-run'"),
    ("wrong version", _set_attr("schema_version", np.int64(1)), "'schema_version' is 1, expected one of 2, 3"),
    ("attr of wrong type", _set_attr("global_batch", 128.0), "'global_batch' should be a scalar int"),
    ("attr as array", _set_attr("seed", np.array([1], dtype=np.int64)), "'seed' should be a scalar int"),
    ("row mismatch", _drop_last_gns_row, "'/gns/sqnorm_global' axis 0 (row count) is 63"),
    ("non-monotone step", _repeat_step, "'/train/step' is not strictly increasing: row 5"),
    ("samples != step * B", _shift_samples, "'/train/samples' != step * global_batch (128) in 1 rows, first row 3"),
    ("steps start at 2", _steps_from_two, "'/train/step' starts at 2, expected 1"),
    ("eval steps decrease", _eval_goes_back, "'/eval/step' decreases: row 2"),
    ("batch split != B", _uneven_layout, "sum of '/layout/batch_per_rank' [49, 80] is 129"),
    ("rank attr != layout", _set_attr("ranks", np.int64(3)), "'/train/loss_rank' axis 1 (rank count) is 2"),
    ("per-rank columns != ranks", _one_rank_loss_columns, "'/train/loss_rank' axis 1 (rank count) is 1"),
    ("status code", _bad_status, "'/status/code' is 7, expected 0..4"),
    ("dtype kind", _loss_as_int, "'/train/loss' should hold float values"),
    # Version 2: micro-batches.
    ("micro split != rank batch", _set("layout/batch_micro", (0,), 17),
     "'/layout/batch_micro' [17, 16, 16, 27, 27, 26] sums per rank (m = 3) to [49, 80], "
     "'/layout/batch_per_rank' is [48, 80]"),
    ("micro count != n*m", _set_attr("microbatches", np.int64(2)),
     "'/layout/batch_micro' axis 0 (micro-batch count) is 6, but root attributes 'ranks' x 'microbatches' gives 4"),
    ("microbatches < 1", _set_attr("microbatches", np.int64(0)), "'microbatches' is 0, expected >= 1"),
    ("sqnorm_micro width", _replace("gns/sqnorm_micro", lambda a: a[:, :5]),
     "'/gns/sqnorm_micro' axis 1 (micro-batch count) is 5"),
    ("non-positive micro-batch", _set("layout/batch_micro", (slice(0, 2),), np.array([0, 32])),
     "'/layout/batch_micro' has non-positive entries"),
    # Layers and per-layer norms.
    ("layer_numel length", _replace("layout/layer_numel", lambda a: a[:2]),
     "'/layout/layer_numel' axis 0 (layer count) is 2, but '/layout/layers' gives 3"),
    ("per-layer micro width", _replace("gns/sqnorm_layer_micro", lambda a: a[:, :17]),
     "'/gns/sqnorm_layer_micro' axis 1 (micro-batches x layers) is 17, but root attributes 'ranks' x "
     "'microbatches' (6) x '/layout/layers' (3) gives 18"),
    ("per-layer global width", _replace("gns/sqnorm_layer_global", lambda a: a[:, :2]),
     "'/gns/sqnorm_layer_global' axis 1 (layer count) is 2"),
    ("per-layer sum", _double_layer_norm,
     "'/gns/sqnorm_layer_global' summed over layers differs from '/gns/sqnorm_global' in 1 rows, first row 3"),
    # Targets.
    ("target shape", _replace("target/step", lambda a: np.array([40, 40], dtype=np.int64)),
     "dataset '/target/step' should have shape [1], has [2]"),
    ("missing target group", _delete("target"), "missing group '/target'"),
    ("target metric", _set_attr("target_metric", "accuracy"), "'target_metric' is 'accuracy', expected one of"),
    ("target value NaN", _set_attr("target_value", float("nan")), "expected a number for target 'val_error'"),
    ("target_stop", _set_attr("target_stop", np.int64(2)), "'target_stop' is 2, expected 0 or 1"),
    ("target samples", _set("target/samples", (0,), 1), "'/target/samples' is 1, expected 5120"),
    ("target step not evaluated", _target_at(41), "'/target/step' 41 is not an evaluated step"),
    ("target step too late", _target_at(50), "already met val_error <= 0.15 at evaluated step 40"),
    ("target step too early", _target_at(30), "which does not meet val_error <= 0.15"),
    ("target step below -1", _target_at(-2), "'/target/step' is -2, expected -1 or >= 0"),
    ("target step without target", _no_target_but_step, "'/target/step' is 40, expected -1 when 'target_metric'"),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS]
)
def test_corruption_is_reported(run_file: Path, mutate: Callable[[h5py.File], None], expected: str) -> None:
    assert check_run_file(run_file) == []
    with h5py.File(run_file, "r+") as f:
        mutate(f)
    problems = check_run_file(run_file)
    assert any(expected in p for p in problems), problems


def test_missing_attribute_is_reported(run_file: Path) -> None:
    with h5py.File(run_file, "r+") as f:
        del f.attrs["ema_beta"]
    assert check_run_file(run_file) == ["missing root attribute 'ema_beta'"]


@pytest.mark.parametrize("name", ["microbatches", "target_metric", "target_value", "target_stop"])
def test_missing_version_2_attribute_is_reported(run_file: Path, name: str) -> None:
    with h5py.File(run_file, "r+") as f:
        del f.attrs[name]
    assert check_run_file(run_file) == [f"missing root attribute '{name}'"]


@pytest.mark.parametrize("name", ["batch_micro", "layers", "layer_numel"])
def test_missing_version_2_layout_is_reported(run_file: Path, name: str) -> None:
    with h5py.File(run_file, "r+") as f:
        del f[f"layout/{name}"]
    assert f"missing dataset '/layout/{name}'" in check_run_file(run_file)


def test_per_layer_datasets_are_optional(run_file: Path) -> None:
    with h5py.File(run_file, "r+") as f:
        del f["gns/sqnorm_layer_micro"]
        del f["gns/sqnorm_layer_global"]
    assert check_run_file(run_file) == []


@pytest.mark.parametrize("spec", [SINGLE_SPEC, STOP_SPEC], ids=lambda s: s.name)
def test_other_valid_runs(tmp_path: Path, spec: RunSpec) -> None:
    assert check_run_file(write_run_file(tmp_path / "run.h5", spec)) == []


def test_single_micro_batch_norms_must_match_local(tmp_path: Path) -> None:
    path = write_run_file(tmp_path / "run.h5", STUDY_SPECS[2])  # b64-s0: m = 1
    with h5py.File(path, "r+") as f:
        f["gns/sqnorm_micro"][0, 0] *= 2
    assert check_run_file(path) == [
        "'/gns/sqnorm_micro' differs from '/gns/sqnorm_local' although 'microbatches' is 1"
    ]


def test_run_that_should_have_stopped_at_target(tmp_path: Path) -> None:
    # target_stop set, but the run went on to its full budget.
    spec = RunSpec("b64-nostop", (32, 32), 0, 0.1, target=TARGET, target_stop=True, steps_written=128)
    problems = check_run_file(write_run_file(tmp_path / "run.h5", spec))
    assert problems == [
        "run stops at its target ('target_stop' 1) and completed, but '/train/step' ends at 128, "
        "'/target/step' is 60"
    ]


def _doc_root_attrs() -> dict[str, str]:
    """Root attribute -> type cell, from the "## Root attributes" table of docs/run-file.md."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "run-file.md"
    rows: dict[str, str] = {}
    in_table = False
    for line in docs.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            in_table = line.strip() == "## Root attributes"
            continue
        if not in_table or not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == "attribute":
            continue
        for name in re.findall(r"`([^`]+)`", cells[0]):
            rows[name] = cells[1]
    return rows


def test_docs_list_every_root_attribute_with_its_type() -> None:
    documented = _doc_root_attrs()
    checked = {**ROOT_ATTRS, **OPTIONAL_ROOT_ATTRS}
    assert set(documented) == set(checked)
    assert {name: documented[name] for name in checked} == checked
