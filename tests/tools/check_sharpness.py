"""An independent check of /eval/sharpness: makes a small HDF5 classification
data set, trains a tiny mlp with eval.sharpness on (batchscope run), then
recomputes the top Hessian eigenvalue at /final/params over
/layout/sharpness_subset with torch.autograd.functional.hessian (the dense
Hessian, eigvalsh) and compares it with the final evaluation's sharpness.

Usage: check_sharpness.py BATCHSCOPE WORKDIR [TOLERANCE]  (Debian's python3:
torch, h5py). Exit 0 when they agree within TOLERANCE (default 0.02) relative.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import torch

STUDY = """study: sharpcheck
output: {out}
seed: 3
device: cpu
data: {{name: hdf5, path: {data}}}
model: {{name: mlp, hidden: [6]}}
optimizer: {{name: sgd, lr: 0.1}}
budget: {{steps: 60}}
eval: {{every_steps: 20, train_subset: 400, batch: 100, sharpness: {{every: 1, iterations: 200, samples: 300, tolerance: 1.0e-7}}}}
log: {{every_steps: 10}}
checkpoint: {{every_minutes: 0}}
runs:
  - {{name: r, batch: [32], lr: 0.1, seed: 1}}
"""


def make_data(path: Path) -> None:
    rng = np.random.default_rng(0)
    n, d, c = 600, 5, 3
    centers = rng.normal(size=(c, d)) * 1.5
    y = rng.integers(0, c, size=n)
    x = (centers[y] + rng.normal(size=(n, d))).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["/train/x"], f["/train/y"] = x[:500], y[:500].astype(np.int64)
        f["/test/x"], f["/test/y"] = x[500:], y[500:].astype(np.int64)


def loss_of(flat: torch.Tensor, sizes: list[int], shapes: list[tuple[int, ...]], x: torch.Tensor,
            y: torch.Tensor) -> torch.Tensor:
    parts = [p.reshape(s) for p, s in zip(torch.split(flat, sizes), shapes)]
    h = x
    for i in range(0, len(parts), 2):
        h = torch.nn.functional.linear(h, parts[i], parts[i + 1])
        if i + 2 < len(parts):
            h = torch.relu(h)
    return torch.nn.functional.cross_entropy(h, y)


def main() -> int:
    binary, work = sys.argv[1], Path(sys.argv[2])
    tol = float(sys.argv[3]) if len(sys.argv) > 3 else 0.02
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data.h5"
    make_data(data)
    study = work / "study.yaml"
    study.write_text(STUDY.format(out=work / "out", data=data))
    subprocess.run([binary, "run", str(study), "--overwrite"], check=True, cwd=work)
    with h5py.File(work / "out" / "runs" / "r.h5", "r") as f:
        params = torch.tensor(f["/final/params"][()], dtype=torch.float64)
        subset = f["/layout/sharpness_subset"][()]
        stored = float(f["/eval/sharpness"][-1])
        iterations = int(f["/eval/sharpness_iterations"][-1])
        sizes = [int(v) for v in f["/layout/layer_numel"][()]]
        names = [v.decode() if isinstance(v, bytes) else str(v) for v in f["/layout/layers"][()]]
    with h5py.File(data, "r") as f:
        x = torch.tensor(f["/train/x"][()][subset], dtype=torch.float64)
        y = torch.tensor(f["/train/y"][()][subset])
    d, c, h = x.shape[1], 3, 6
    shapes = {"fc0.weight": (h, d), "fc0.bias": (h,), "out.weight": (c, h), "out.bias": (c,)}
    hess = torch.autograd.functional.hessian(
        lambda p: loss_of(p, sizes, [shapes[n] for n in names], x, y), params)
    top = float(torch.linalg.eigvalsh(hess).max())
    rel = abs(stored - top) / abs(top)
    print(f"batchscope /eval/sharpness {stored:.7g} ({iterations} iterations), dense Hessian (float64) {top:.7g}, "
          f"relative difference {rel:.3g} (tolerance {tol})")
    return 0 if rel <= tol else 1


if __name__ == "__main__":
    sys.exit(main())
