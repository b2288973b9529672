"""TensorBoard event files from run files, for teams that live in TensorBoard.

`batchscope-analysis tensorboard DIR OUT` writes one folder per run under OUT
(`OUT/<run>/events.out.tfevents.<time>.batchscope`), so `tensorboard --logdir
OUT` lists the runs side by side. No TensorBoard or TensorFlow is needed to
write them: the format is small and written here (TFRecord framing with
masked CRC-32C, around `Event` protocol buffers holding scalar summaries),
and `read_events` reads it back for tests and checks.

The x axis ("step" in TensorBoard) is samples trained, not steps: runs at
different batch sizes then line up by data seen, which is what a batch-size
study compares. Scalars: train/loss, train/lr, gns/b_simple, eval/val_loss,
eval/train_loss and, for classifiers, eval/val_acc and eval/train_acc (in %).
Per-step columns are thinned to at most `max_points` per run (evenly, the
last step always kept), as TensorBoard itself keeps 1000 scalars per tag.
"""

from __future__ import annotations

import math
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Union

import numpy as np
import numpy.typing as npt
import pandas as pd

from batchscope_analysis.load import Run

PathLike = Union[str, Path]
DEFAULT_MAX_POINTS: int = 1000

# (table, column, tag, scale): the scalars written per run.
STEP_SCALARS: tuple[tuple[str, str, str, float], ...] = (
    ("train", "loss", "train/loss", 1.0),
    ("train", "lr", "train/lr", 1.0),
    ("gns", "b_simple", "gns/b_simple", 1.0),
)
EVAL_SCALARS: tuple[tuple[str, str, str, float], ...] = (
    ("eval", "val_loss", "eval/val_loss", 1.0),
    ("eval", "train_loss", "eval/train_loss", 1.0),
    ("eval", "val_acc", "eval/val_acc", 100.0),
    ("eval", "train_acc", "eval/train_acc", 100.0),
)


# --- CRC-32C (Castagnoli), as TFRecord frames use it --------------------------
def _crc_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(record: bytes) -> bytes:
    """One TFRecord: length, its masked CRC, the data, the data's masked CRC."""
    length = struct.pack("<Q", len(record))
    return length + struct.pack("<I", masked_crc(length)) + record + struct.pack("<I", masked_crc(record))


# --- the protocol buffers (tensorflow/core/util/event.proto, summary.proto) ----
def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1  # int64 fields: two's complement
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint((number << 3) | wire) + payload


def _bytes_field(number: int, data: bytes) -> bytes:
    return _field(number, 2, _varint(len(data)) + data)


def event(wall_time: float, step: int, *, file_version: str = "", scalars: Iterable[tuple[str, float]] = ()) -> bytes:
    """An Event: wall_time (1, double), step (2, int64), file_version (3) or a
    Summary (5) of Values with tag (1) and simple_value (2, float)."""
    out = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step))
    if file_version:
        out += _bytes_field(3, file_version.encode())
    values = b"".join(
        _bytes_field(1, _bytes_field(1, tag.encode()) + _field(2, 5, struct.pack("<f", value)))
        for tag, value in scalars
    )
    if values:
        out += _bytes_field(5, values)
    return out


# --- reading back ---------------------------------------------------------------
@dataclass(frozen=True)
class Scalar:
    tag: str
    step: int
    value: float
    wall_time: float


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _fields(data: bytes) -> Iterator[tuple[int, int, Union[int, bytes]]]:
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
            yield number, wire, value
        elif wire == 1:
            yield number, wire, data[i:i + 8]
            i += 8
        elif wire == 5:
            yield number, wire, data[i:i + 4]
            i += 4
        elif wire == 2:
            size, i = _read_varint(data, i)
            yield number, wire, data[i:i + size]
            i += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _records(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    i = 0
    while i < len(data):
        length = data[i:i + 8]
        (size,) = struct.unpack("<Q", length)
        if struct.unpack("<I", data[i + 8:i + 12])[0] != masked_crc(length):
            raise ValueError(f"{path}: bad length CRC at byte {i}")
        record = data[i + 12:i + 12 + size]
        if struct.unpack("<I", data[i + 12 + size:i + 16 + size])[0] != masked_crc(record):
            raise ValueError(f"{path}: bad data CRC at byte {i}")
        yield record
        i += 16 + size


def read_events(path: PathLike) -> list[Scalar]:
    """Every scalar in an event file, CRCs checked (ValueError if one fails)."""
    out = []
    for record in _records(Path(path)):
        wall, step, values = 0.0, 0, b""
        for number, _, value in _fields(record):
            if number == 1 and isinstance(value, bytes):
                (wall,) = struct.unpack("<d", value)
            elif number == 2 and isinstance(value, int):
                step = value - (1 << 64) if value >= 1 << 63 else value
            elif number == 5 and isinstance(value, bytes):
                values = value
        for _, _, v in _fields(values):
            assert isinstance(v, bytes)
            tag, simple = "", math.nan
            for n, _, x in _fields(v):
                if n == 1 and isinstance(x, bytes):
                    tag = x.decode()
                elif n == 2 and isinstance(x, bytes):
                    (simple,) = struct.unpack("<f", x)
            out.append(Scalar(tag, step, simple, wall))
    return out


# --- run files to event files --------------------------------------------------
def thin(n: int, max_points: int) -> npt.NDArray[np.int64]:
    """Row indices: all of them, or max_points evenly spread with the last kept."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def run_events(run: Run, max_points: int = DEFAULT_MAX_POINTS) -> list[bytes]:
    """The run's Events, x = samples trained, wall times from its wall_s."""
    start = time.time() - float(run.train["wall_s"].iloc[-1]) if len(run.train) else time.time()
    events = [event(start, 0, file_version="brain.Event:2")]
    tables = {"train": run.train, "gns": run.gns, "eval": run.eval}
    for specs, table in ((STEP_SCALARS, "train"), (EVAL_SCALARS, "eval")):
        frame: pd.DataFrame = tables[table]
        rows = thin(len(frame), max_points) if table == "train" else np.arange(len(frame))
        for i in rows:
            scalars = []
            for source, column, tag, scale in specs:
                if column in tables[source].columns:
                    value = float(tables[source][column].iloc[i]) * scale
                    if math.isfinite(value):
                        scalars.append((tag, value))
            if scalars:
                events.append(event(start + _wall_at(run, int(frame["step"].iloc[i])), int(frame["samples"].iloc[i]),
                                    scalars=scalars))
    return events


def _wall_at(run: Run, step: int) -> float:
    """Seconds into the run at `step` (the step-0 evaluation: 0)."""
    if not len(run.train):
        return 0.0
    return float(np.interp(step, run.train["step"].to_numpy(), run.train["wall_s"].to_numpy(), left=0.0))


def write_tensorboard(runs: Iterable[Run], out: PathLike, max_points: int = DEFAULT_MAX_POINTS) -> list[Path]:
    """One event file per run under OUT/<run>/; returns their paths."""
    written = []
    for run in runs:
        folder = Path(out) / run.name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"events.out.tfevents.{int(time.time())}.batchscope"
        path.write_bytes(b"".join(frame(e) for e in run_events(run, max_points)))
        written.append(path)
    return written
