"""Models, data and references for tests/e2e/own_model.sh (Debian's python3 with torch).

  own_model.py make DIR              TorchScript modules and HDF5 data sets the test trains
  own_model.py reference DIR RUN.h5  a plain PyTorch loop on the same module and batches; exit 1
                                     if batchscope's loss trace differs by more than the tolerance
  own_model.py same A.h5 B.h5 [--rtol R]
                                     exit 1 unless two run files' traces agree (bit for bit by default)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

FEATURES, CLASSES, TARGETS = 64, 5, 3
STEPS, LR, MOMENTUM = 15, 0.05, 0.9
# Full-batch steps: batchscope visits the 64 samples in a permuted order, so
# the mean loss sums them in another order than this loop. That, and
# nothing else, separates the two: float32 rounding of ~1e-7 per step,
# grown by 15 momentum steps. 2e-5 relative is 100x that and 1000x below
# what a wrong gradient weight or lr would give.
RTOL = 2e-5
# What split invisibility and exact resume promise to keep identical (the
# per-rank columns differ in shape between layouts; timings measure the machine).
SAME = ["train/loss", "train/lr", "gns/sqnorm_global", "eval/step", "eval/val_loss", "eval/val_acc",
        "eval/train_loss", "eval/train_acc"]


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(FEATURES, 32)
        self.fc2 = nn.Linear(32, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class BnDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(FEATURES, 32)
        self.bn = nn.BatchNorm1d(32)
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(32, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(torch.relu(self.bn(self.fc1(x)))))


class Regress(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(FEATURES, 16)
        self.fc2 = nn.Linear(16, TARGETS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))


class Throws(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(FEATURES, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(1) != 7:
            raise RuntimeError("this model wants 7 features")
        return self.fc(x)


class Narrow(nn.Module):
    """Three logits for five classes."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(FEATURES, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class Flat(nn.Module):
    """One number per sample: not logits."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(FEATURES, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).squeeze(1)


def make(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for name, module in [("mlp", Mlp()), ("bn", BnDropout()), ("regress", Regress()), ("throws", Throws()),
                         ("narrow", Narrow()), ("flat", Flat())]:
        torch.jit.script(module).save(str(out / f"{name}.pt"))
    rng = np.random.default_rng(1)
    w = rng.normal(size=(FEATURES, CLASSES))
    wr = rng.normal(size=(FEATURES, TARGETS)) / 8
    with h5py.File(out / "classes.h5", "w") as f, h5py.File(out / "regress.h5", "w") as g:
        for split, n in [("train", 512), ("test", 128)]:
            x = rng.normal(size=(n, FEATURES)).astype(np.float32)
            f[f"{split}/x"] = x
            f[f"{split}/y"] = np.argmax(x @ w + rng.normal(size=(n, CLASSES)), axis=1).astype(np.int64)
            g[f"{split}/x"] = x
            g[f"{split}/y"] = (np.tanh(x @ wr) + 0.05 * rng.normal(size=(n, TARGETS))).astype(np.float32)
    (out / "not_a_model.pt").write_text("this is not a TorchScript archive\n")


def reference(out: Path, run: Path) -> int:
    module = torch.jit.load(str(out / "mlp.pt"))
    with h5py.File(out / "classes.h5", "r") as f:
        x = torch.from_numpy(f["train/x"][:64])
        y = torch.from_numpy(f["train/y"][:64])
    opt = torch.optim.SGD(module.parameters(), lr=LR, momentum=MOMENTUM)
    ref = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(module(x), y)
        loss.backward()
        opt.step()
        ref.append(loss.item())
    with h5py.File(run, "r") as f:
        got = f["train/loss"][:]
    worst = float(np.max(np.abs(got - np.array(ref)) / np.abs(np.array(ref))))
    print(f"{run.name}: {len(got)} steps, loss {got[0]:.6f} -> {got[-1]:.6f}; plain PyTorch {ref[0]:.6f} -> "
          f"{ref[-1]:.6f}; largest relative difference {worst:.2e} (tolerance {RTOL:.0e})")
    return 0 if len(got) == STEPS and worst <= RTOL else 1


def same(a: Path, b: Path, rtol: float) -> int:
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        bad = []
        for name in SAME:
            va, vb = fa[name][:], fb[name][:]
            equal = np.array_equal(va, vb, equal_nan=True) if rtol == 0 else np.allclose(
                va, vb, rtol=rtol, atol=0, equal_nan=True)
            if va.shape != vb.shape or not equal:
                bad.append(name)
        rows = fa["train/loss"].shape[0]
    agree = "bit-identical" if rtol == 0 else f"equal within {rtol:.0e} relative"
    print(f"{a} vs {b}: {rows} steps, " + (agree if not bad else "differ in " + ", ".join(bad)))
    return 0 if not bad else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("make").add_argument("dir", type=Path)
    r = sub.add_parser("reference")
    r.add_argument("dir", type=Path)
    r.add_argument("run", type=Path)
    s = sub.add_parser("same")
    s.add_argument("a", type=Path)
    s.add_argument("b", type=Path)
    s.add_argument("--rtol", type=float, default=0.0)
    a = p.parse_args()
    if a.cmd == "make":
        make(a.dir)
        return 0
    if a.cmd == "reference":
        return reference(a.dir, a.run)
    return same(a.a, a.b, a.rtol)


if __name__ == "__main__":
    sys.exit(main())
