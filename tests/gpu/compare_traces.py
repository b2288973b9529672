#!/usr/bin/env python3
"""Compares the per-step traces of two batchscope outputs run by run: the
same study trained two ways (CPU vs GPU, MPI vs NCCL) must agree.

    compare_traces.py REF_DIR OTHER_DIR [--rtol-first 1e-5] [--first-steps 1]
                      [--rtol 2e-2] [--expect-comm nccl]

Two tolerances, because two ways of summing the same floats part slowly and
then faster: the difference of the first steps is rounding alone (changing
only the CPU thread count gives about 1e-7 at step 1), while by step 100 it
has grown exponentially (2.5e-4 from the thread count alone). So the first
--first-steps steps are held to --rtol-first, in the loss and in the squared
gradient norms (gns/sqnorm_global), and every later step's loss to --rtol,
which catches a wrong gradient (a missing or doubled reduction gives errors
of order 1) but not rounding.

--sharpness-rtol-first (and --sharpness-rtol) also hold /eval/sharpness:
the step-0 evaluation's (the same parameters on both sides, so rounding
alone; use a fixed iteration count, tolerance 0, so both sides take the same
number of products) and every later one's (parameters that have parted).

--exact instead holds every recorded number to bit equality: each dataset
under /train, /gns, /eval and /target but the clocks (wall_s, step_ms), as
for two ways of running the same kernels (CUDA graphs against eager steps).

Prints, per run, the largest relative differences, and exits 1 if any run is
missing, did not complete, has different steps, records another communicator
than --expect-comm, or differs by more than a tolerance.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from dataclasses import dataclass

import h5py
import numpy as np


@dataclass
class Trace:
    steps: np.ndarray
    loss: np.ndarray
    sqnorm: np.ndarray
    status: int
    comm: str
    sharpness: np.ndarray


def read(path: str) -> Trace:
    with h5py.File(path, "r") as f:
        comm = f.attrs["comm"]
        return Trace(steps=f["/train/step"][:], loss=f["/train/loss"][:],
                     sqnorm=f["/gns/sqnorm_global"][:] if "/gns/sqnorm_global" in f else np.zeros(0),
                     status=int(f["/status/code"][0]),
                     comm=comm.decode() if isinstance(comm, bytes) else str(comm),
                     sharpness=f["/eval/sharpness"][:] if "/eval/sharpness" in f else np.zeros(0))


def rel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(b - a) / np.maximum(np.abs(a), 1e-12)


EXACT_GROUPS = ("train", "gns", "eval", "target")
CLOCKS = ("wall_s", "step_ms")


def compare_exact(name: str, ref: str, other: str) -> bool:
    """Every number but the clocks, bit for bit (NaN equal to NaN)."""
    differ, count = [], 0
    with h5py.File(ref, "r") as f, h5py.File(other, "r") as g:
        for grp in EXACT_GROUPS:
            for key in sorted(f[grp].keys()) if grp in f else []:
                if key in CLOCKS:
                    continue
                count += 1
                x, y = f[grp][key][()], g[f"{grp}/{key}"][()] if f"{grp}/{key}" in g else None
                if y is None or x.shape != y.shape or not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
                    differ.append(f"{grp}/{key}")
        status = (int(f["/status/code"][0]), int(g["/status/code"][0]))
    ok = not differ and status == (1, 1) and count > 0
    print(f"{name}: {count} datasets compared bit for bit, status {status[0]}/{status[1]}; "
          f"{'identical' if not differ else 'differ: ' + ', '.join(differ)}: {'OK' if ok else 'FAIL'}")
    return ok


def compare(name: str, r: Trace, o: Trace, a: argparse.Namespace) -> bool:
    if r.status != 1 or o.status != 1 or not np.array_equal(r.steps, o.steps):
        print(f"{name}: status {r.status}/{o.status}, steps {len(r.steps)}/{len(o.steps)}: not comparable")
        return False
    if a.expect_comm and o.comm != a.expect_comm:
        print(f"{name}: the run file records comm '{o.comm}', expected '{a.expect_comm}'")
        return False
    k = min(a.first_steps, len(r.steps))
    first = rel(r.loss[:k], o.loss[:k])
    if len(r.sqnorm) >= k and len(o.sqnorm) >= k:
        first = np.concatenate([first, rel(r.sqnorm[:k], o.sqnorm[:k])])
    later = rel(r.loss[k:], o.loss[k:])
    worst_first = float(first.max()) if first.size else 0.0
    worst_later = float(later.max()) if later.size else 0.0
    ok = bool(np.isfinite(o.loss).all() and worst_first <= a.rtol_first and worst_later <= a.rtol)
    at = int(r.steps[k + int(later.argmax())]) if later.size else 0
    print(f"{name}: {len(r.steps)} steps, comm {r.comm} vs {o.comm}; first {k} step(s) (loss, squared norm) "
          f"max rel diff {worst_first:.2e} (rtol {a.rtol_first:g}); later loss max rel diff {worst_later:.2e} "
          f"at step {at} (rtol {a.rtol:g}): {'OK' if ok else 'FAIL'}")
    if a.sharpness_rtol_first is not None:
        ok = compare_sharpness(name, r.sharpness, o.sharpness, a) and ok
    return ok


def compare_sharpness(name: str, r: np.ndarray, o: np.ndarray, a: argparse.Namespace) -> bool:
    """/eval/sharpness: measured at the same evaluations, finite, and close."""
    measured = np.isfinite(r)
    if r.size == 0 or not measured.any() or r.shape != o.shape or not np.array_equal(measured, np.isfinite(o)):
        print(f"{name}: sharpness measured at {int(measured.sum())} vs {int(np.isfinite(o).sum())} evaluations "
              f"(shapes {r.shape} vs {o.shape}): FAIL")
        return False
    d = rel(r[measured], o[measured])
    first, later = float(d[0]), float(d[1:].max()) if d.size > 1 else 0.0
    ok = first <= a.sharpness_rtol_first and later <= a.sharpness_rtol
    print(f"{name}: sharpness at {d.size} evaluations, step 0: {r[measured][0]:.6g} vs {o[measured][0]:.6g}, "
          f"rel diff {first:.2e} (rtol {a.sharpness_rtol_first:g}); later max rel diff {later:.2e} "
          f"(rtol {a.sharpness_rtol:g}): {'OK' if ok else 'FAIL'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ref")
    ap.add_argument("other")
    ap.add_argument("--rtol-first", type=float, default=1e-5, help="tolerance of the first steps")
    ap.add_argument("--first-steps", type=int, default=1)
    ap.add_argument("--rtol", type=float, default=2e-2, help="tolerance of the later steps' loss")
    ap.add_argument("--expect-comm", default="", help="the communicator OTHER's run files must record")
    ap.add_argument("--sharpness-rtol-first", type=float, default=None,
                    help="hold /eval/sharpness at the first measured evaluation to this (default: not compared)")
    ap.add_argument("--sharpness-rtol", type=float, default=5e-2, help="... and at the later ones")
    ap.add_argument("--exact", action="store_true", help="every number but the clocks, bit for bit")
    a = ap.parse_args(argv)
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
        same = compare_exact(name, ref, other) if a.exact else compare(name, read(ref), read(other), a)
        bad += 0 if same else 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
