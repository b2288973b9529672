"""TensorBoard export: the file format (CRC-32C, TFRecord frames, Event
protos) checked against known values and read back, and, where the
tensorboard package is installed, read by TensorBoard's own loader."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest

from batchscope_analysis import tensorboard as tb
from batchscope_analysis.load import load_study


def test_crc32c_known_values() -> None:
    assert tb.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert tb.crc32c(b"") == 0
    # TFRecord's masking of a 32-byte zero buffer's CRC (from the CRC-32C test vectors: 0x8A9136AA)
    assert tb.crc32c(bytes(32)) == 0x8A9136AA


def test_an_event_round_trips_with_negative_steps_and_several_tags(tmp_path: Path) -> None:
    data = tb.frame(tb.event(12.5, -3, scalars=[("a/x", 1.5), ("b", -2.25)])) + tb.frame(tb.event(13.0, 7))
    path = tmp_path / "e"
    path.write_bytes(data)
    got = tb.read_events(path)
    assert [(s.tag, s.step, s.value, s.wall_time) for s in got] == [("a/x", -3, 1.5, 12.5), ("b", -3, -2.25, 12.5)]
    corrupt = bytearray(data)
    corrupt[20] ^= 1
    path.write_bytes(bytes(corrupt))
    with pytest.raises(ValueError, match="CRC"):
        tb.read_events(path)


def test_thin_keeps_ends_and_bounds_the_count() -> None:
    assert list(tb.thin(5, 10)) == [0, 1, 2, 3, 4]
    rows = tb.thin(10_000, 1000)
    assert len(rows) == 1000 and rows[0] == 0 and rows[-1] == 9999


def test_a_study_exports_one_file_per_run_with_its_numbers(study_dir: Path, tmp_path: Path) -> None:
    runs = load_study(study_dir)
    paths = tb.write_tensorboard(runs, tmp_path / "tb", max_points=50)
    assert sorted(p.parent.name for p in paths) == sorted(r.name for r in runs)
    run = runs[0]
    scalars = tb.read_events(tmp_path / "tb" / run.name / paths[0].name if paths[0].parent.name == run.name else
                             next(p for p in paths if p.parent.name == run.name))
    loss = [s for s in scalars if s.tag == "train/loss"]
    assert 0 < len(loss) <= 50
    assert loss[-1].step == int(run.train["samples"].iloc[-1])  # x = samples, the last step kept
    assert loss[-1].value == pytest.approx(float(run.train["loss"].iloc[-1]), rel=1e-6)  # float32 in the file
    acc = [s for s in scalars if s.tag == "eval/val_acc"]
    assert len(acc) == len(run.eval)
    assert acc[-1].value == pytest.approx(100 * float(run.eval["val_acc"].iloc[-1]), rel=1e-6)
    assert all(np.isfinite(s.value) for s in scalars)


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed (optional)")
def test_tensorboard_reads_them(study_dir: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # type: ignore[import-not-found]

    runs = load_study(study_dir)
    path = tb.write_tensorboard(runs[:1], tmp_path)[0]
    acc = EventAccumulator(str(path.parent))
    acc.Reload()
    assert "train/loss" in acc.Tags()["scalars"]
    assert acc.Scalars("train/loss")[-1].step == int(runs[0].train["samples"].iloc[-1])


def test_the_command_writes_them(study_dir: Path, tmp_path: Path) -> None:
    from batchscope_analysis.cli import main

    assert main(["tensorboard", str(study_dir), "--out", str(tmp_path / "tb"), "--max-points", "20"]) == 0
    files = sorted((tmp_path / "tb").glob("*/events.out.tfevents.*"))
    assert len(files) == len(load_study(study_dir))
    assert all(len([s for s in tb.read_events(f) if s.tag == "train/loss"]) <= 20 for f in files)
    assert main(["tensorboard", str(study_dir), "--out", str(tmp_path / "x"), "--max-points", "1"]) == 2


def test_struct_sizes() -> None:
    assert len(tb.frame(b"")) == 16 and struct.calcsize("<Q") == 8
