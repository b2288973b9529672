#!/usr/bin/env bash
# The shared run queue: 3 one-rank groups take runs of very different lengths
# (400 steps at global batch 4 .. 256) as they finish. Every run is trained
# exactly once, its file equals the same run trained by a 1-group study
# (CPU training is deterministic, and nothing in a run depends on which group
# trains it), and a study preempted mid-way continues with --resume: finished
# runs are not trained again, the preempted ones continue from their
# checkpoints, the ones never handed out start. No timings: the preemptions
# wait for the runs to say they hold at a step.
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
cat >"$out/queue.yaml" <<YAML
study: queue
output: $out/unused
seed: 3
data: {name: fashion-mnist, train_size: 2048, test_size: 300}
model: {name: mlp, hidden: [32]}
optimizer: {name: sgd, lr: 0.05, ref_batch: 64, scaling: none, momentum: 0.9}
budget: {steps: 400}
eval: {every_steps: 100, train_subset: 200}
log: {every_steps: 10}
sweep: {global_batch: [4, 16, 64, 256], lr: [0.02, 0.05], seed: [1], ranks: 1}
YAML
run() {  # run NP OUTDIR [args]: the study on NP ranks (NP one-rank groups)
  local np=$1 dir=$2; shift 2
  mpirun -np "$np" --oversubscribe "$bin" run "$out/queue.yaml" --threads 1 --set output="$dir" "$@" >"$dir.log" 2>&1
}
# Compares every run file of DIR with REF's: both complete, the same arrays.
same_as_ref() {  # same_as_ref DIR REF
  /usr/bin/python3 - "$1" "$2" <<'PY'
import csv, glob, sys
import h5py, numpy as np
d, ref = sys.argv[1], sys.argv[2]
names = sorted(p.split("/")[-1] for p in glob.glob(f"{ref}/runs/*.h5"))
assert len(names) == 8, names
assert sorted(p.split("/")[-1] for p in glob.glob(f"{d}/runs/*.h5")) == names
rows = [r["run"] for r in csv.DictReader(open(f"{d}/summary.csv"))]
assert sorted(rows) == sorted(n[:-3] for n in names), rows  # each run once in the summary
for n in names:
    with h5py.File(f"{d}/runs/{n}", "r") as a, h5py.File(f"{ref}/runs/{n}", "r") as b:
        assert a["status/code"][0] == 1, (n, "not completed")
        assert np.array_equal(a["train/step"][:], np.arange(1, 401)), (n, "a step missing or trained twice")
        for k in ["train/loss", "train/lr", "gns/sqnorm_global", "eval/step", "eval/val_loss", "eval/val_acc",
                  "eval/train_acc"]:
            assert np.array_equal(a[k][:], b[k][:], equal_nan=True), (n, k)
print(f"{d}: {len(names)} runs equal the 1-group study's")
PY
}

"$bin" plan "$out/queue.yaml" --ranks 3 >"$out/plan.txt"
check "plan says the rest is dynamic" grep -q "shared queue" "$out/plan.txt"

run 1 "$out/ref"
check "1-group reference exits 0" test $? -eq 0
run 3 "$out/three"
check "3 groups exit 0" test $? -eq 0
check "3 groups: every run once, equal to the 1-group study" same_as_ref "$out/three" "$out/ref"
check "every group trained (each starts with a run of its own)" /usr/bin/python3 -c "
import glob, h5py
ranks = {int(h5py.File(p, 'r')['layout/world_ranks'][0]) for p in glob.glob('$out/three/runs/*.h5')}
assert ranks == {0, 1, 2}, ranks"
check "the summary reports the groups' idle share" grep -q "^group idle: .*% of the study's rank-time" "$out/three.log"
check "and the queue's answer times" grep -q "^run queue: [0-9]* requests answered" "$out/three.log"

# Preemption without timing: with BATCHSCOPE_HOLD_AT_STEP=40 every run that
# starts fresh stops at step 40 until a stop signal (util/step_hold.h). Job 1:
# each group holds in its first run; SIGUSR1 -> 3 runs preempted (at step 50,
# the next drain), 5 never handed out. Job 2 (--resume, same hold): the 3
# preempted runs go first and finish (they are past step 40), then each group
# holds in a fresh run; SIGUSR1 -> 3 done, 3 preempted, 2 unstarted. Job 3
# (--resume): trains the 5 unfinished runs, not the 3 done ones.
held() {  # held OUTDIR [args]: runs the study in the background until 3 runs hold (and, with
          # $want set, until the log matches it), then signals it
  local dir=$1; shift
  BATCHSCOPE_HOLD_AT_STEP=40 mpirun -np 3 --oversubscribe "$bin" run "$out/queue.yaml" --threads 1 \
    --set output="$dir" "$@" >>"$dir.log" 2>&1 &
  local job=$! before
  before=$(grep -c ' holding at step 40 ' "$dir.log" 2>/dev/null)
  for _ in $(seq 600); do
    [ "$(grep -c ' holding at step 40 ' "$dir.log")" -ge $((before + 3)) ] &&
      { [ -z "${want:-}" ] || grep -q "$want" "$dir.log"; } && break
    kill -0 $job 2>/dev/null || break
    sleep 0.2
  done
  kill -USR1 $job
  wait $job
}
state() {  # state OUTDIR: "run status-code last-step checkpoint" per run file
  /usr/bin/python3 - "$1" <<'PY'
import glob, os, sys, h5py
d = sys.argv[1]
for p in sorted(glob.glob(f"{d}/runs/*.h5")):
    with h5py.File(p, "r") as f:
        name = os.path.basename(p)[:-3]
        print(name, int(f["status/code"][0]), int(f["train/step"][-1]), os.path.exists(f"{d}/checkpoints/{name}.ckpt.done"))
PY
}
count() { grep -c "$1" "$2"; }  # count PATTERN FILE

: >"$out/p.log"
held "$out/p"
check "job 1: exit 75 after SIGUSR1" test $? -eq 75
state "$out/p" >"$out/p1.txt"; sed 's/^/  job 1: /' "$out/p1.txt"
check "job 1: each group's first run preempted at step 50 with a checkpoint, the rest never handed out" \
  test "$(count ' 4 50 True$' "$out/p1.txt") $(wc -l <"$out/p1.txt")" = "3 3"
# Rank 0's study line while the 3 fresh runs hold (printed every
# log.progress_seconds while rank 0 waits in its hold): 3 done, 3 running.
want='^study: 3/8 runs done, 3 running, 2 queued; ETA [0-9]' held "$out/p" --resume --set log.progress_seconds=0.1
check "job 2: exit 75 after SIGUSR1" test $? -eq 75
check "job 2: the study line counted 3 done, 3 running, 2 queued" grep -q '^study: 3/8 runs done, 3 running, 2 queued; ETA [0-9]' "$out/p.log"
state "$out/p" >"$out/p2.txt"; sed 's/^/  job 2: /' "$out/p2.txt"
check "job 2: the 3 preempted runs finished first, 3 fresh ones preempted, 2 never handed out" \
  test "$(count ' 1 400 False$' "$out/p2.txt") $(count ' 4 50 True$' "$out/p2.txt") $(wc -l <"$out/p2.txt")" = "3 3 6"
check "job 2: the finished ones are job 1's preempted ones" \
  test "$(grep ' 4 50 True$' "$out/p1.txt" | cut -d' ' -f1)" = "$(grep ' 1 400 False$' "$out/p2.txt" | cut -d' ' -f1)"
mpirun -np 3 --oversubscribe "$bin" run "$out/queue.yaml" --threads 1 --set output="$out/p" --resume \
  >"$out/p3.log" 2>&1
check "job 3: resume exits 0" test $? -eq 0
check "resumed twice: every run once, equal to the 1-group study" same_as_ref "$out/p" "$out/ref"
# A trained run prints at least its last progress line; a finished one only
# its summary row, read from its file.
trained_in_job3() {
  while read -r name code _; do
    if grep -q "^\[$name\] step" "$out/p3.log"; then echo "$name"; fi
  done <"$out/p2.txt"
}
check "job 3 trained the 3 preempted runs and not the 3 finished ones" \
  test "$(trained_in_job3)" = "$(grep ' 4 50 True$' "$out/p2.txt" | cut -d' ' -f1)"
check "no checkpoint left" test -z "$(ls "$out/p/checkpoints")"
summary
