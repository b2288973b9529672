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
import sys
from pathlib import Path
from typing import Optional, Sequence

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import idx_to_hdf5  # beside this file: the script's folder is on sys.path

HERE: Path = Path(__file__).resolve().parent
MODEL_FILE: str = "cnn_bn.pt"
DATA_FILE: str = "fashion.h5"
DEFAULT_ROOT: Path = Path("/usr/share/datasets/fashion-mnist")  # Debian: dataset-fashion-mnist
CLASSES: int = 10


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
    """Writes the four arrays (idx_to_hdf5.py beside this file); returns their shapes by dataset name."""
    tmp = path.with_name(path.name + ".part")
    idx_to_hdf5.convert(str(root), str(tmp))
    tmp.replace(path)  # a half-written file never has the final name
    with h5py.File(path, "r") as f:
        return {key: tuple(f[key].shape) for key in idx_to_hdf5.FILES}


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
