#!/usr/bin/env bash
# Preemption and resume: SIGUSR1 mid-study -> every rank checkpoints, unfinished
# runs say "preempted", exit 75; --resume finishes the study, and every run's
# trace equals an uninterrupted run's, step for step. Then the refusals: a
# changed study (exit 6, naming the key) and a torn checkpoint (exit 6).
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
study="$root/configs/quickstart.yaml"
args=(--threads 1 --set 'budget={steps: 300}' --set data.train_size=8192 --set data.test_size=2000
      --set 'eval={every_steps: 40, train_subset: 500}' --set log.every_steps=10 --set log.flush_seconds=0.2
      --set 'sweep={global_batch: [32, 128], ranks: 2, split: [1, 3]}' --set 'runs=[{name: solo, batch: [64]}]')

# Starts the study in the background with every run holding at step 60
# (BATCHSCOPE_HOLD_AT_STEP: a run cannot finish, or run past step 70, before
# the signal, however fast the machine), waits for run "solo" to say so, then
# sends SIGUSR1 to mpirun, which forwards it to the ranks.
preempt() {  # preempt OUTDIR [extra args]
  local dir=$1; shift
  BATCHSCOPE_HOLD_AT_STEP=60 mpirun -np 3 --oversubscribe "$bin" run "$study" "${args[@]}" --set output="$dir" "$@" \
    >"$dir.log" 2>&1 &
  local job=$!
  for _ in $(seq 600); do
    grep -qs '^\[solo\] holding at step 60 ' "$dir.log" && break
    kill -0 $job 2>/dev/null || break
    sleep 0.2
  done
  kill -USR1 $job
  local t0=$SECONDS
  wait $job
  local rc=$?
  echo "preempted job exited $rc after $((SECONDS - t0)) s"
  return $rc
}

preempt "$out/a"; rc=$?
check "exit code 75 after SIGUSR1" test "$rc" -eq 75
check "checkpoint written for the in-flight run" test -f "$out/a/checkpoints/solo.ckpt.done"
check "run file says preempted at step 70 (held at 60, stopped at the next drain)" /usr/bin/python3 -c "
import h5py, sys
f = h5py.File('$out/a/runs/solo.h5', 'r', swmr=True)
sys.exit(0 if f['status/code'][0] == 4 and f['status/step'][0] == 70 else 1)"

mpirun -np 3 --oversubscribe "$bin" run "$study" "${args[@]}" --set output="$out/a" --resume >"$out/a-resume.log" 2>&1
check "resume exits 0" test $? -eq 0
check "no checkpoint left after completion" test -z "$(ls "$out/a/checkpoints")"
mpirun -np 3 --oversubscribe "$bin" run "$study" "${args[@]}" --set output="$out/ref" >"$out/ref.log" 2>&1
check "reference run exits 0" test $? -eq 0
check "resumed traces equal the uninterrupted ones" /usr/bin/python3 - "$out/a" "$out/ref" <<'PY'
import sys, glob, os
import h5py, numpy as np
from batchscope_analysis.schema import check_run_file
a_dir, ref_dir = sys.argv[1], sys.argv[2]
files = sorted(glob.glob(f"{a_dir}/runs/*.h5"))
assert len(files) == 3, files
for p in files:
    assert check_run_file(p) == [], (p, check_run_file(p))
    with h5py.File(p, "r", swmr=True) as a, h5py.File(p.replace(a_dir, ref_dir), "r", swmr=True) as b:
        assert a["status/code"][0] == 1, p
        step = a["train/step"][:]
        assert np.array_equal(step, np.arange(1, 301)), "no duplicate and no missing step"
        # CPU training is deterministic: the resumed run is the same run.
        for name in ["train/loss", "train/loss_rank", "gns/sqnorm_local", "gns/sqnorm_global", "gns/b_simple",
                     "eval/step", "eval/val_acc", "eval/train_acc", "train/lr"]:
            assert np.array_equal(a[name][:], b[name][:], equal_nan=True), (p, name)
        assert np.all(np.diff(a["train/wall_s"][:]) >= 0), "wall time continues across the resume"
print("3 resumed runs equal their uninterrupted twins")
PY

mpirun -np 3 --oversubscribe "$bin" run "$study" "${args[@]}" --set output="$out/a" --resume >"$out/a-again.log" 2>&1
check "resuming a finished study trains nothing and exits 0" test $? -eq 0
check "finished runs are reported, not retrained" grep -q "completed" "$out/a-again.log"

preempt "$out/b" >/dev/null; rc=$?
check "second preemption exits 75" test "$rc" -eq 75
mpirun -np 3 --oversubscribe "$bin" run "$study" "${args[@]}" --set output="$out/b" --resume \
  --set optimizer.momentum=0.5 >"$out/b-changed.log" 2>&1
rc=$?
check "a changed study is refused with exit 6" test "$rc" -eq 6
check "the refusal names what differs" grep -q "optimizer: checkpoint has sgd lr 0.05.*momentum 0.9" "$out/b-changed.log"
ck=$(ls "$out"/b/checkpoints/*.ckpt | head -1)
head -c 1000 "$ck" >"$ck.cut" && mv "$ck.cut" "$ck"
mpirun -np 3 --oversubscribe "$bin" run "$study" "${args[@]}" --set output="$out/b" --resume >"$out/b-torn.log" 2>&1
rc=$?
check "a torn checkpoint is refused with exit 6" test "$rc" -eq 6
check "the refusal says torn" grep -q "torn checkpoint" "$out/b-torn.log"
summary
