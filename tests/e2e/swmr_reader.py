#!/usr/bin/env python3
"""SWMR reader for tests/e2e/swmr_stress.sh, in two modes.

  swmr_reader.py follow RUN_FILE STOP_FILE OUT.npz
      Opens RUN_FILE with swmr=True as soon as it opens, then refresh()es and
      reads in a tight loop until STOP_FILE exists (then one last cycle).
      Each cycle re-reads the last two chunks' worth of rows of every
      followed dataset (plus the new rows), so a row is seen many times: a
      row that changes after it was first seen is caught too. Saves, per
      dataset, the first value seen at each index and every later value that
      differed from it, plus the number of cycles and row reads.

  swmr_reader.py check RUN_FILE OUT.npz...
      Compares what the readers saw with the finished file: every value seen
      must equal the finished file's value at that index (NaN equals NaN).
      Prints the figures and exits 1 on any mismatch.
"""
import os
import sys
import time

import numpy as np

DATASETS = ["train/step", "train/loss", "train/samples", "gns/g2_est"]
WINDOW = 2048  # rows re-read behind the end each cycle: two 1024-row chunks


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "f":
        return (a == b) | (np.isnan(a) & np.isnan(b))
    return a == b


def follow(path, stop, out):
    import h5py

    f = None
    while f is None:  # the writer may not have made the file, or started SWMR
        stopping = os.path.exists(stop)
        try:
            f = h5py.File(path, "r", swmr=True)
            dsets = {name: f[name] for name in DATASETS}
        except (OSError, KeyError):
            if f is not None:
                f.close()
                f = None
            if stopping:
                sys.exit(f"reader: {path} never opened for SWMR reading")
            time.sleep(0.01)  # a poll, not a deadline: the stop file ends it
    first = {name: [] for name in DATASETS}  # first value seen at each index
    changed = {name: [] for name in DATASETS}  # (index, value) differing from first
    cycles = reads = 0
    while True:
        last = os.path.exists(stop)  # checked before the cycle: the last one sees the end
        for name, d in dsets.items():
            d.refresh()
            n = d.shape[0]
            seen = len(first[name])
            lo = max(0, min(seen, n - WINDOW))
            if n <= lo:
                continue
            vals = d[lo:n]
            reads += n - lo
            if seen < n:
                first[name].extend(vals[seen - lo:].tolist())
            if seen > lo:
                old = np.asarray(first[name][lo:seen])
                bad = np.nonzero(~same(vals[: seen - lo], old))[0]
                changed[name].extend((lo + int(i), vals[i].item()) for i in bad)
        cycles += 1
        if last:
            break
    f.close()
    arrays = {"cycles": np.int64(cycles), "reads": np.int64(reads)}
    for name in DATASETS:
        key = name.replace("/", ".")
        arrays[key + ".first"] = np.asarray(first[name], dtype=np.float64)
        ch = np.asarray(changed[name], dtype=np.float64).reshape(-1, 2)
        arrays[key + ".changed"] = ch
    np.savez(out, **arrays)


def check(path, outs):
    import h5py

    with h5py.File(path, "r", swmr=True) as f:
        final = {name: f[name][:].astype(np.float64) for name in DATASETS}
    cycles = reads = rows = mismatches = 0
    for out in outs:
        z = np.load(out)
        cycles += int(z["cycles"])
        reads += int(z["reads"])
        for name in DATASETS:
            key = name.replace("/", ".")
            fv, ch = z[key + ".first"], z[key + ".changed"]
            want = final[name]
            if len(fv) > len(want):
                print(f"MISMATCH {out}: {name} had {len(fv)} rows live, {len(want)} finished")
                mismatches += len(fv) - len(want)
                fv = fv[: len(want)]
            rows += len(fv)
            for i in np.nonzero(~same(fv, want[: len(fv)]))[0][:20]:
                print(f"MISMATCH {out}: {name}[{i}] first read {fv[i]!r}, finished {want[i]!r}")
            mismatches += int(np.count_nonzero(~same(fv, want[: len(fv)])))
            for i, v in ch:
                i = int(i)
                print(f"MISMATCH {out}: {name}[{i}] changed after it was seen: read {v!r}, "
                      f"finished {want[i] if i < len(want) else None!r}")
                mismatches += 1
    steps = len(final["train/step"])
    print(f"swmr stress: readers {len(outs)}, reads {cycles} refresh cycles ({reads} row reads), "
          f"rows checked {rows} (finished file {steps} steps x {len(DATASETS)} datasets), "
          f"mismatches {mismatches}")
    return mismatches == 0 and steps > 0


if __name__ == "__main__":
    if sys.argv[1] == "follow":
        follow(*sys.argv[2:5])
    elif sys.argv[1] == "check":
        sys.exit(0 if check(sys.argv[2], sys.argv[3:]) else 1)
    else:
        sys.exit(__doc__)
