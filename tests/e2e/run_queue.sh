#!/usr/bin/env bash
# The shared run queue: 3 one-rank groups take runs of very different lengths
# (400 steps at global batch 4 .. 256) as they finish. Every run is trained
# exactly once, its file equals the same run trained by a 1-group study
# (CPU training is deterministic, and nothing in a run depends on which group
# trains it), and a study preempted mid-way continues with --resume: finished
# runs are not trained again, the preempted ones continue from their
# checkpoints, the ones never handed out start. No sleeps, no timings: the
# preemption waits for a marker (a run file's step count).
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
log: {every_steps: 10, flush_seconds: 0.2}
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

# Preempted once a 256-batch run (handed out first: the longest planned) has
# trained 40 of its 400 steps; mpirun forwards SIGUSR1 to every rank.
mpirun -np 3 --oversubscribe "$bin" run "$out/queue.yaml" --threads 1 --set output="$out/p" >"$out/p.log" 2>&1 &
job=$!
timeout 120 /usr/bin/python3 - "$out/p/runs/b256_lr0.02_s1.h5" <<'PY'
import sys, time, h5py
while True:
    try:
        with h5py.File(sys.argv[1], "r", swmr=True) as f:
            if f["train/step"].shape[0] >= 40:
                break
    except (OSError, KeyError):
        pass
    time.sleep(0.05)
PY
kill -USR1 $job
wait $job
check "preempted study exits 75 on every rank" test $? -eq 75
/usr/bin/python3 - "$out/p" >"$out/p-state.txt" <<'PY'
import glob, os, sys, h5py
d = sys.argv[1]
for p in sorted(glob.glob(f"{d}/runs/*.h5")):
    with h5py.File(p, "r") as f:
        name = os.path.basename(p)[:-3]
        code = int(f["status/code"][0])
        ck = os.path.exists(f"{d}/checkpoints/{name}.ckpt.done")
        print(name, code, ck, f.attrs["created"])
PY
echo "after the preemption (run, status code, checkpoint, created):"; sed 's/^/  /' "$out/p-state.txt"
echo "  never handed out: $((8 - $(wc -l <"$out/p-state.txt")))"
check "the marked run was preempted with a checkpoint" grep -q "^b256_lr0.02_s1 4 True" "$out/p-state.txt"
check "every started run is completed or preempted with a checkpoint" \
  awk '!(($2 == 1 && $3 == "False") || ($2 == 4 && $3 == "True")) { exit 1 }' "$out/p-state.txt"
mpirun -np 3 --oversubscribe "$bin" run "$out/queue.yaml" --threads 1 --set output="$out/p" --resume \
  >"$out/p.resume.log" 2>&1
check "resume exits 0" test $? -eq 0
check "resumed: every run once, equal to the 1-group study" same_as_ref "$out/p" "$out/ref"
# A trained run prints at least its last progress line; a finished one only
# its summary row, read from its file.
not_trained_again() {
  while read -r name code _; do
    if [ "$code" = 1 ] && grep -q "^\[$name\] step" "$out/p.resume.log"; then echo "$name trained again"; return 1; fi
  done <"$out/p-state.txt"
}
check "runs finished before the preemption were not trained again" not_trained_again
check "no checkpoint left" test -z "$(ls "$out/p/checkpoints")"
summary
