#!/usr/bin/env bash
# A run file is readable while the run trains (SWMR) and after the job is
# killed with SIGKILL: it holds a prefix of steps and says "running". The run
# holds at step 1000 (BATCHSCOPE_HOLD_AT_STEP), so it cannot finish before the
# kill, however fast the machine.
set -euo pipefail
source "$(dirname "$0")/lib.sh" "$@"
BATCHSCOPE_HOLD_AT_STEP=1000 mpirun -np 2 --oversubscribe "$bin" run "$root/configs/quickstart.yaml" --threads 1 \
  --set output="$out" --set 'budget={steps: 2000}' --set 'sweep={global_batch: [32], ranks: 2}' \
  --set log.every_steps=5 --set log.flush_seconds=0.2 --set data.train_size=4096 --set eval.train_subset=100 \
  >"$out.log" 2>&1 &
job=$!
trap 'kill -9 $job 2>/dev/null || true' EXIT
# A live reader follows the file until it has seen rows arrive twice, or the
# run has held with all its 1000 rows on disk (a machine fast enough to get
# there before the reader's second look).
timeout 120 /usr/bin/python3 - "$out/runs/b32_lr0.05_s1.h5" "$out.log" <<'PY'
import os, sys, time
import h5py
path, log = sys.argv[1], sys.argv[2]
while not os.path.exists(path):
    time.sleep(0.2)
def holding():
    with open(log) as f:
        return "holding at step 1000" in f.read()
seen = []
while len(seen) < 2 and not (seen and seen[-1] == 1000 and holding()):
    try:
        with h5py.File(path, "r", swmr=True) as f:
            n = f["train/step"].shape[0]
            if n and (not seen or n > seen[-1]):
                seen.append(n)
                assert f["train/step"][n - 1] == n
    except (OSError, KeyError):
        pass  # the writer may still be creating the file
    time.sleep(0.3)
print(f"live SWMR reader saw {seen} rows")
PY
pkill -9 -f "batchscope run $root/configs/quickstart.yaml" || true
kill -9 $job 2>/dev/null || true
wait $job 2>/dev/null || true
/usr/bin/python3 - "$out/runs/b32_lr0.05_s1.h5" <<'PY'
import sys
import h5py
import numpy as np
from batchscope_analysis.schema import check_run_file
path = sys.argv[1]
problems = check_run_file(path)
assert problems == [], problems
# A killed SWMR writer leaves the "open for write" flag: readers open with
# swmr=True (or clear the flag with `h5clear -s`), as docs/run-file.md says.
with h5py.File(path, "r", swmr=True) as f:
    steps = f["train/step"][:]
    assert len(steps) >= 5 and np.array_equal(steps, np.arange(1, len(steps) + 1)), steps[:10]
    assert f["status/code"][0] == 0, "a killed run must still say running"
    assert np.all(np.isfinite(f["train/loss"][:]))
    print(f"killed run: {len(steps)} steps readable, status running")
PY
