#!/usr/bin/python3
"""Converts the four IDX files of MNIST or Fashion-MNIST into one HDF5 file
that `data: {name: hdf5, path: FILE}` reads with its default dataset keys:

  /train/x  uint8 [60000, 1, 28, 28]   (a channel axis, so the built-in cnn fits)
  /train/y  int64 [60000]
  /test/x   uint8 [10000, 1, 28, 28]
  /test/y   int64 [10000]

The IDX files may be gzip-compressed (NAME.gz is preferred, as batchscope's
own reader does). Needs numpy and h5py (Debian's /usr/bin/python3 has both):

    /usr/bin/python3 configs/own_model/idx_to_hdf5.py /usr/share/datasets/fashion-mnist fashion-mnist.h5

export.py uses it for the example's data; tests/e2e/own_model.sh for its HDF5-vs-IDX check.
"""
from __future__ import annotations

import argparse
import gzip
import os
import struct
import sys
from typing import Any, Dict

import h5py
import numpy as np
from numpy.typing import NDArray

FILES: Dict[str, str] = {
    "/train/x": "train-images-idx3-ubyte",
    "/train/y": "train-labels-idx1-ubyte",
    "/test/x": "t10k-images-idx3-ubyte",
    "/test/y": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str) -> NDArray[Any]:
    """An unsigned-byte IDX array: magic 00 00 08 NDIM, big-endian uint32 dims, data."""
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as gz:
            data = gz.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    if len(data) < 4 or data[0:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {body.size} bytes of data for dims {list(dims)}")
    return body.reshape(dims)


def find(folder: str, name: str) -> str:
    for candidate in (os.path.join(folder, name + ".gz"), os.path.join(folder, name)):
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"{folder}: no {name}.gz or {name} (Debian: apt-get install dataset-fashion-mnist)")


def convert(folder: str, out: str) -> None:
    arrays: Dict[str, NDArray[Any]] = {}
    for key, name in FILES.items():
        a = read_idx(find(folder, name))
        if key.endswith("/x"):
            if a.ndim != 3:
                raise ValueError(f"{name}: expected images [N, rows, cols], got shape {a.shape}")
            a = a[:, np.newaxis, :, :]
        else:
            if a.ndim != 1:
                raise ValueError(f"{name}: expected labels [N], got shape {a.shape}")
            a = a.astype(np.int64)
        arrays[key] = a
    for split in ("train", "test"):
        x, y = arrays[f"/{split}/x"], arrays[f"/{split}/y"]
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{split}: {x.shape[0]} images but {y.shape[0]} labels")
    with h5py.File(out, "w") as f:
        for key, a in arrays.items():
            f.create_dataset(key, data=a)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="folder with the four IDX files (.gz or raw)")
    parser.add_argument("out", help="the HDF5 file to write (replaced if it exists)")
    args = parser.parse_args()
    try:
        convert(args.folder, args.out)
    except (OSError, ValueError) as e:
        print(f"idx_to_hdf5: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
