"""configs/own_model: export.py writes the TorchScript model and the HDF5 data that study.yaml trains.

Needs Debian's python3-torch (the export) and dataset-fashion-mnist; skipped
with the reason where either is missing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

REPO_ROOT: Path = Path(__file__).resolve().parents[2]
CONFIG_DIR: Path = REPO_ROOT / "configs" / "own_model"
FASHION_ROOT: Path = Path("/usr/share/datasets/fashion-mnist")


def _study() -> dict[str, object]:
    study = yaml.safe_load((CONFIG_DIR / "study.yaml").read_text(encoding="utf-8"))
    assert isinstance(study, dict)
    return study


def test_study_trains_what_export_writes() -> None:
    study = _study()
    model, data, sweep = study["model"], study["data"], study["sweep"]
    assert isinstance(model, dict) and isinstance(data, dict) and isinstance(sweep, dict)
    assert model["name"] == "torchscript" and data["name"] == "hdf5"
    assert model.get("init", "file") == "file" and model.get("loss", "cross_entropy") == "cross_entropy"
    # Paths are relative to the working directory, the repository root; export.py
    # writes next to itself by default.
    assert REPO_ROOT / model["path"] == CONFIG_DIR / "cnn_bn.pt"
    assert REPO_ROOT / data["path"] == CONFIG_DIR / "fashion.h5"
    assert 2 <= len(sweep["global_batch"]) <= 3
    assert study["budget"] == {"epochs": 1}


def test_export_writes_loadable_model_and_data(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="export.py needs PyTorch (Debian: python3-torch)")
    if not (FASHION_ROOT / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no Fashion-MNIST in {FASHION_ROOT} (Debian: dataset-fashion-mnist)")
    out = tmp_path / "own"
    result = subprocess.run([sys.executable, str(CONFIG_DIR / "export.py"), "--out", str(out)],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert "check: torch.jit.load and a forward pass on 2 samples give output [2, 10]" in result.stdout

    module = torch.jit.load(str(out / "cnn_bn.pt"))
    names = [name for name, _ in module.named_parameters()]
    assert names == ["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "conv2.weight", "conv2.bias",
                     "bn2.weight", "bn2.bias", "fc.weight", "fc.bias"]
    assert "bn1.running_mean" in [name for name, _ in module.named_buffers()]
    module.eval()
    assert tuple(module(torch.zeros(3, 1, 28, 28)).shape) == (3, 10)

    with h5py.File(out / "fashion.h5", "r") as f:
        shapes = {name: (f[name].shape, f[name].dtype) for name in ("train/x", "train/y", "test/x", "test/y")}
        assert shapes == {
            "train/x": ((60000, 1, 28, 28), np.dtype(np.uint8)),
            "train/y": ((60000,), np.dtype(np.int64)),
            "test/x": ((10000, 1, 28, 28), np.dtype(np.uint8)),
            "test/y": ((10000,), np.dtype(np.int64)),
        }
        labels = f["train/y"][()]
        assert labels.min() == 0 and labels.max() == 9
        assert f["test/x"][0].max() > 0  # real images, not zeros
    # The weights are the seed's: a second export gives the same file content.
    again = subprocess.run([sys.executable, str(CONFIG_DIR / "export.py"), "--out", str(tmp_path / "again"),
                            "--skip-data"], capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0, again.stderr
    first = dict(module.named_parameters())
    second = dict(torch.jit.load(str(tmp_path / "again" / "cnn_bn.pt")).named_parameters())
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_export_names_missing_data(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="export.py needs PyTorch (Debian: python3-torch)")
    result = subprocess.run([sys.executable, str(CONFIG_DIR / "export.py"), "--out", str(tmp_path / "o"),
                             "--root", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 1
    assert f"{tmp_path / 'nothing'}: no train-images-idx3-ubyte.gz" in result.stderr
