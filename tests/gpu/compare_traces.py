#!/usr/bin/env python3
"""Compares the per-step loss traces of two batchscope outputs run by run:
the same study trained two ways (CPU vs GPU, MPI vs NCCL) must agree.

    compare_traces.py REF_DIR OTHER_DIR --rtol 1e-3

Prints, per run, the largest relative loss difference and exits 1 if any run
is missing, did not complete, has a different number of steps, or differs by
more than --rtol at any step.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys

import h5py
import numpy as np


def trace(path: str) -> tuple[np.ndarray, np.ndarray, int, str]:
    with h5py.File(path, "r") as f:
        steps = f["/train/step"][:]
        loss = f["/train/loss"][:]
        status = int(f["/status/code"][0])
        comm = f.attrs["comm"]
        comm = comm.decode() if isinstance(comm, bytes) else str(comm)
    return steps, loss, status, comm


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("other")
    ap.add_argument("--rtol", type=float, default=1e-3)
    a = ap.parse_args()
    refs = sorted(glob.glob(os.path.join(a.ref, "runs", "*.h5")))
    if not refs:
        print(f"no run files under {a.ref}/runs", file=sys.stderr)
        return 1
    bad = 0
    for ref in refs:
        name = os.path.basename(ref)
        other = os.path.join(a.other, "runs", name)
        if not os.path.exists(other):
            print(f"{name}: missing in {a.other}")
            bad += 1
            continue
        s0, l0, c0, m0 = trace(ref)
        s1, l1, c1, m1 = trace(other)
        if c0 != 1 or c1 != 1 or len(s0) != len(s1) or not np.array_equal(s0, s1):
            print(f"{name}: status {c0}/{c1}, steps {len(s0)}/{len(s1)}: not comparable")
            bad += 1
            continue
        rel = np.abs(l1 - l0) / np.maximum(np.abs(l0), 1e-12)
        worst = float(rel.max())
        ok = np.isfinite(l1).all() and worst <= a.rtol
        bad += 0 if ok else 1
        print(f"{name}: {len(s0)} steps, comm {m0} vs {m1}, max rel loss diff {worst:.2e} "
              f"(at step {int(s0[rel.argmax()])}), {'OK' if ok else 'FAIL'} (rtol {a.rtol:g})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
