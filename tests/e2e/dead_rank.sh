#!/usr/bin/env bash
# A rank dies (SIGKILL): the job ends non-zero within a bounded time, no rank
# hangs or lingers, and every run file stays readable with its prefix of steps.
# Every run holds at step 200 (BATCHSCOPE_HOLD_AT_STEP), so none can finish
# before the kill, however fast the machine.
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
BATCHSCOPE_HOLD_AT_STEP=200 mpirun -np 3 --oversubscribe "$bin" run "$root/configs/quickstart.yaml" --threads 1 \
  --set output="$out/run" \
  --set 'budget={steps: 1000}' --set data.train_size=8192 --set 'eval={every_steps: 5000, train_subset: 500}' \
  --set log.every_steps=5 --set log.flush_seconds=0.2 --set 'runs=[{name: solo, batch: [64]}]' >"$out/log" 2>&1 &
job=$!
# Wait until both groups' run files hold rows (whichever runs the queue gave
# them first; each holds in it), then kill world rank 1.
timeout 120 /usr/bin/python3 - "$out/run/runs" <<'PY'
import glob, sys, time, h5py
d = sys.argv[1]
while True:
    try:
        n = [h5py.File(p, "r", swmr=True)["train/step"].shape[0] for p in glob.glob(f"{d}/*.h5")]
        if len(n) >= 2 and min(n) >= 10:
            break
    except (OSError, KeyError):
        pass
    time.sleep(0.2)
PY
victim=$(pgrep -f "^$bin run .*$out/run" | sed -n 2p)
kill -9 "$victim"
t0=$SECONDS
timeout 60 bash -c "while kill -0 $job 2>/dev/null; do sleep 0.2; done"
alive=$?
wait $job; rc=$?
elapsed=$((SECONDS - t0))
echo "job exited $rc, $elapsed s after the rank died"
fails=0
[ "$alive" -eq 0 ] || { echo "FAILED: the job was still running 60 s after a rank died"; fails=1; kill -9 $job; }
[ "$rc" -ne 0 ] || { echo "FAILED: exit code 0 after a rank died"; fails=1; }
if pgrep -f "^$bin run .*$out/run" >/dev/null; then echo "FAILED: ranks left running"; pkill -9 -f "^$bin run .*$out/run"; fails=1; fi
/usr/bin/python3 - "$out/run/runs" <<'PY' || fails=1
import sys, glob
import h5py, numpy as np
from batchscope_analysis.schema import check_run_file
for p in sorted(glob.glob(f"{sys.argv[1]}/*.h5")):
    assert check_run_file(p) == [], (p, check_run_file(p))
    with h5py.File(p, "r", swmr=True) as f:
        step = f["train/step"][:]
        assert len(step) >= 10 and np.array_equal(step, np.arange(1, len(step) + 1)), p
        code = int(f["status/code"][0])
        # The dead rank's group was killed mid-step: its file can only say
        # running. mpirun sends SIGTERM to the other groups, which checkpoint
        # and say preempted: true too, and resumable.
        assert code in (0, 4), (p, code)
        if code == 4:
            ck = p.replace("/runs/", "/checkpoints/").replace(".h5", ".ckpt.done")
            assert glob.glob(ck), f"{p} says preempted but has no checkpoint"
    print(f"{p}: {len(step)} steps readable, status {('running', '', '', '', 'preempted')[code]}")
PY
[ "$fails" -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fails
