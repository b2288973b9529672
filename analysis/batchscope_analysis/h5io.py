"""Low-level HDF5 access shared by the schema checker and the loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import h5py
import numpy as np

from batchscope_analysis.errors import RunFileError


def open_run_file(path: Union[str, Path]) -> h5py.File:
    """Open a run file read-only, following a live writer when possible.

    SWMR read needs the latest file format; files written without it (old
    tools, hand-made files) still open in plain read mode.
    """
    try:
        return h5py.File(path, "r", swmr=True)
    except OSError:
        pass
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise RunFileError(path, f"cannot open as HDF5 ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_str_value(value: Any) -> bool:
    # h5py returns str for variable-length strings and numpy.bytes_ for
    # fixed-length ones; both are valid ways for C++ writers to store text.
    return isinstance(value, (str, bytes))


def is_int_value(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_float_value(value: Any) -> bool:
    return isinstance(value, (float, np.floating))


def to_python(value: Any) -> Any:
    """Attribute value as a plain Python object (str, int, float, list)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [to_python(v) for v in value.tolist()] if value.dtype.kind in "SO" else value.tolist()
    return value


def is_string_dtype(dtype: np.dtype[Any]) -> bool:
    return h5py.check_string_dtype(dtype) is not None


def read_dataset(ds: h5py.Dataset) -> Any:
    """Whole dataset as numpy (strings decoded to str); scalars as Python values."""
    if is_string_dtype(ds.dtype):
        data = ds.asstr()[()]
        return data.tolist() if isinstance(data, np.ndarray) else str(data)
    data = ds[()]
    return data.item() if isinstance(data, np.generic) or np.ndim(data) == 0 else np.asarray(data)
