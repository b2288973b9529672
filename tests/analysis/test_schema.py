"""The schema checker accepts valid files and names each kind of corruption."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
from synthetic_runs import STUDY_SPECS, write_run_file

from batchscope_analysis.errors import RunFileError
from batchscope_analysis.schema import check_run_file


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


CORRUPTIONS: list[tuple[str, Callable[[h5py.File], None], str]] = [
    ("missing dataset", _delete("gns/b_simple"), "missing dataset '/gns/b_simple'"),
    ("missing group", _delete("eval"), "missing group '/eval'"),
    ("wrong schema", _set_attr("schema", "batchscope-trace"), "expected 'batchscope-run'"),
    ("wrong version", _set_attr("schema_version", np.int64(2)), "'schema_version' is 2, expected 1"),
    ("attr of wrong type", _set_attr("global_batch", 128.0), "'global_batch' should be a scalar int"),
    ("attr as array", _set_attr("seed", np.array([1], dtype=np.int64)), "'seed' should be a scalar int"),
    ("row mismatch", _drop_last_gns_row, "'/gns/sqnorm_global' axis 0 (row count) is 31"),
    ("non-monotone step", _repeat_step, "'/train/step' is not strictly increasing: row 5"),
    ("samples != step * B", _shift_samples, "'/train/samples' != step * global_batch (128) in 1 rows, first row 3"),
    ("steps start at 2", _steps_from_two, "'/train/step' starts at 2, expected 1"),
    ("eval steps decrease", _eval_goes_back, "'/eval/step' decreases: row 2"),
    ("batch split != B", _uneven_layout, "sum of '/layout/batch_per_rank' [49, 80] is 129"),
    ("rank attr != layout", _set_attr("ranks", np.int64(3)), "'/train/loss_rank' axis 1 (rank count) is 2"),
    ("per-rank columns != ranks", _one_rank_loss_columns, "'/train/loss_rank' axis 1 (rank count) is 1"),
    ("status code", _bad_status, "'/status/code' is 7, expected 0..4"),
    ("dtype kind", _loss_as_int, "'/train/loss' should hold float values"),
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
