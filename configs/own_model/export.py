#!/usr/bin/python3
"""Makes the two files configs/own_model/study.yaml trains: your own model and your own data.

- cnn_bn.pt: a small CNN with BatchNorm (conv16-bn-relu-pool, conv32-bn-relu-pool,
  fc 10), defined below in plain PyTorch and saved as TorchScript
  (torch.jit.script(model).save(path)); batchscope loads it with LibTorch's
  torch::jit::load and trains its parameters.
- fashion.h5: Fashion-MNIST from its IDX files as HDF5: /train/x uint8
  [60000, 1, 28, 28], /train/y int64 [60000], /test/x uint8 [10000, 1, 28, 28],
  /test/y int64 [10000] (the dataset names batchscope reads by default).

Run it from the repository root with Debian's python3 (python3-torch, python3-h5py):

    /usr/bin/python3 configs/own_model/export.py            # files next to this script
    /usr/bin/python3 configs/own_model/export.py --out DIR  # elsewhere (then set model.path, data.path)

Both files are checked before it ends: the module is loaded back with
torch.jit.load and run on two samples of the data, as `batchscope check` does.
"""

from __future__ import annotations

import argparse
import gzip
import struct
import sys
from pathlib import Path
from typing import Optional, Sequence

import h5py
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

HERE: Path = Path(__file__).resolve().parent
MODEL_FILE: str = "cnn_bn.pt"
DATA_FILE: str = "fashion.h5"
DEFAULT_ROOT: Path = Path("/usr/share/datasets/fashion-mnist")  # Debian: dataset-fashion-mnist
CLASSES: int = 10
# IDX magic numbers: unsigned bytes, 3 dimensions (images) or 1 (labels).
IMAGES_MAGIC: int = 0x00000803
LABELS_MAGIC: int = 0x00000801


class CnnBn(nn.Module):
    """conv 3x3 16 - BatchNorm - ReLU - max-pool 2, conv 3x3 32 - BatchNorm - ReLU - max-pool 2, linear 10.

    Input [N, 1, 28, 28] floats, output [N, 10] logits (what cross_entropy
    expects). Named attributes give the parameters readable names in the run
    file (/layout/layers: conv1.weight, bn1.weight, ...), and the BatchNorm
    running statistics become the run's `model_buffers`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.fc = nn.Linear(32 * 7 * 7, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        logits: torch.Tensor = self.fc(torch.flatten(x, 1))
        return logits


def read_idx(path: Path, magic: int) -> npt.NDArray[np.uint8]:
    """An IDX file (gzipped or not) as a uint8 array of the shape its header gives."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    found, = struct.unpack(">I", data[:4])
    if found != magic:
        raise ValueError(f"{path}: IDX magic {found:#010x}, expected {magic:#010x}")
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {array.size} bytes of data, header says {dims} (truncated?)")
    return array.reshape(dims)


def find_idx(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"{root}: no {stem}.gz or {stem} (Debian: apt-get install dataset-fashion-mnist)")


def export_model(path: Path, seed: int) -> None:
    """Builds CnnBn with PyTorch's default initialization from `seed` and saves it as TorchScript.

    With `model.init: file` (the default) every run starts from exactly these
    weights; `model.init: seeded` redraws them per run instead.
    """
    torch.manual_seed(seed)
    model = CnnBn()
    model.train()  # batchscope switches to eval mode for evaluations itself
    # torch 1.13's torch.jit re-exports script and load without listing them for mypy.
    torch.jit.script(model).save(str(path))  # type: ignore[attr-defined]


def export_data(path: Path, root: Path) -> dict[str, tuple[int, ...]]:
    """Writes the four arrays; returns their shapes by dataset name."""
    splits = {"train": "train", "test": "t10k"}
    shapes: dict[str, tuple[int, ...]] = {}
    tmp = path.with_name(path.name + ".part")
    with h5py.File(tmp, "w") as f:
        for split, prefix in splits.items():
            images = read_idx(find_idx(root, f"{prefix}-images-idx3-ubyte"), IMAGES_MAGIC)
            labels = read_idx(find_idx(root, f"{prefix}-labels-idx1-ubyte"), LABELS_MAGIC)
            if images.shape[0] != labels.shape[0]:
                raise ValueError(f"{root}: {split} has {images.shape[0]} images but {labels.shape[0]} labels")
            x = images[:, None, :, :]  # [N, 1, 28, 28]: one channel, as Conv2d wants it
            y = labels.astype(np.int64)  # class indices for cross_entropy
            f.create_dataset(f"{split}/x", data=x, dtype=np.uint8)
            f.create_dataset(f"{split}/y", data=y, dtype=np.int64)
            shapes[f"/{split}/x"], shapes[f"/{split}/y"] = x.shape, y.shape
    tmp.replace(path)  # a half-written file never has the final name
    return shapes


def verify(model_path: Path, data_path: Path) -> tuple[int, ...]:
    """Loads the module back and runs it on two standardized training samples; returns the output shape."""
    module = torch.jit.load(str(model_path))  # type: ignore[attr-defined]
    with h5py.File(data_path, "r") as f:
        x_all = f["train/x"]
        mean = float(np.mean(x_all[:1000]) / 255.0)
        stdev = float(np.std(x_all[:1000] / 255.0))
        x = torch.from_numpy((x_all[:2] / 255.0 - mean) / stdev).float()
        y = torch.from_numpy(f["train/y"][:2])
    module.train()
    out = module(x)
    if tuple(out.shape) != (2, CLASSES):
        raise ValueError(f"{model_path}: output shape {tuple(out.shape)} for 2 samples, expected (2, {CLASSES})")
    loss = F.cross_entropy(out, y)
    if not torch.isfinite(loss):
        raise ValueError(f"{model_path}: non-finite loss {loss.item()} on two samples")
    return tuple(out.shape)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE,
                        help=f"folder for {MODEL_FILE} and {DATA_FILE} (default: {HERE}, where study.yaml expects them)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help=f"folder with the Fashion-MNIST IDX files (default: {DEFAULT_ROOT})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the saved initial weights (default: 0)")
    parser.add_argument("--skip-data", action="store_true", help=f"write only {MODEL_FILE}")
    args = parser.parse_args(argv)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    model_path, data_path = out / MODEL_FILE, out / DATA_FILE
    try:
        export_model(model_path, args.seed)
        print(f"{model_path}: TorchScript CnnBn, {sum(p.numel() for p in CnnBn().parameters())} parameters")
        if not args.skip_data:
            for name, shape in export_data(data_path, args.root).items():
                print(f"{data_path}:{name} {list(shape)}")
        if data_path.is_file():
            shape = verify(model_path, data_path)
            print(f"check: torch.jit.load and a forward pass on 2 samples give output {list(shape)}")
    except (OSError, ValueError) as exc:
        print(f"export.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
