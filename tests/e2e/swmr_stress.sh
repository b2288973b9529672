#!/usr/bin/env bash
# SWMR reads that are never wrong (issue 15): readers that follow a run file
# while it trains see only values the finished file has, at the same index,
# and a row once seen never changes. The writer is the real binary, a tiny mlp
# on synthetic data that writes every step (log.every_steps=1) and flushes
# every 10 ms, so tens of thousands of rows cross many 1024-row chunks;
# READERS processes (tests/e2e/swmr_reader.py) open the file with swmr=True as
# soon as it opens and refresh() and read in a tight loop until the run ends
# (a stop file, made after the writer exits). Then every value they saw is
# compared with the finished file. Runs at 1 rank and at 2 (rank 0 writes).
# Readers run at nice 10 (SWMR_NICE): they poll without pause, and the writer must still
# get the CPU (2 cores in CI) to cross chunks while they read.
# Knobs for runs by hand: SWMR_STEPS (per run), SWMR_READERS, SWMR_RANKS, SWMR_NICE.
set -euo pipefail
source "$(dirname "$0")/lib.sh" "$@"
readers=${SWMR_READERS:-3}
study() {  # study NP STEPS: the study file of one run at NP ranks, batch 8 in all
  local batch=8 steps=$2; [ "$1" -eq 2 ] && batch="4, 4"
  cat >"$out/np$1.yaml" <<EOF
study: swmr
data: {name: synthetic, synthetic_train: 512, synthetic_test: 64}
model: {name: mlp, hidden: [8]}
budget: {steps: $steps}
eval: {train_subset: 64, every_steps: 1000000}
log: {every_steps: 1, flush_seconds: 0.01, progress_seconds: 1000}
gns: {microbatches: 2}
runs: [{name: r, batch: [$batch]}]
EOF
}
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
for np in ${SWMR_RANKS:-1 2}; do
  dir="$out/np$np" file="$out/np$np/runs/r.h5" stop="$out/np$np.stop"
  mkdir -p "$dir"
  # Two oversubscribed ranks on CI's 2 cores step ~10x slower: fewer steps.
  steps=${SWMR_STEPS:-$([ "$np" -eq 1 ] && echo 15000 || echo 3000)}
  study "$np" "$steps"
  pids=()
  for i in $(seq "$readers"); do
    nice -n "${SWMR_NICE:-10}" /usr/bin/python3 "$here/swmr_reader.py" follow "$file" "$stop" "$out/np$np.reader$i.npz" &
    pids+=($!)
  done
  rc=0
  mpirun -np "$np" --oversubscribe "$bin" run "$out/np$np.yaml" --threads 1 --set output="$dir" \
    >"$out/np$np.log" 2>&1 || rc=$?
  touch "$stop"
  for p in "${pids[@]}"; do wait "$p"; done
  pids=()
  if [ "$rc" -ne 0 ]; then
    echo "writer at $np ranks exited $rc:"; sed 's/^/  | /' "$out/np$np.log"; exit 1
  fi
  echo "writer: $np rank(s), $steps steps"
  /usr/bin/python3 "$here/swmr_reader.py" check "$file" "$out"/np$np.reader*.npz
done
