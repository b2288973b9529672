#!/usr/bin/env bash
# tests/gpu/compare_traces.py is what judges the GPU runs against the CPU, on
# a machine CI never sees; here it is checked on the CPU: the same runs under
# two rank layouts (1 rank vs 2 ranks, 1-rank groups) agree exactly, and a
# study with a 1% different lr is reported as different (exit 1), as are
# a run file recording another communicator than expected and a missing run.
# Its sharpness comparison likewise: equal under both layouts, equal at step 0
# and different later for the changed lr, and a failure when one side has none.
set -euo pipefail
source "$(dirname "$0")/lib.sh" "$@"
cat >"$out/eq.yaml" <<YAML
study: traces
output: $out/unused
data: {name: fashion-mnist, train_size: 2048, test_size: 500}
model: {name: mlp, hidden: [64]}
optimizer: {name: sgd, lr: 0.05, ref_batch: 64, scaling: none, momentum: 0.9}
budget: {steps: 30}
eval: {every_steps: 15, train_subset: 200, sharpness: {every: 1, iterations: 10, samples: 128, tolerance: 0, at_start: true}}
log: {every_steps: 10}
runs:
  - {name: one_a, batch: [64]}
  - {name: one_b, batch: [128]}
YAML
mpirun -np 1 "$bin" run "$out/eq.yaml" --set output="$out/np1" --threads 1 >/dev/null
mpirun -np 2 --oversubscribe "$bin" run "$out/eq.yaml" --set output="$out/np2" --threads 1 >/dev/null
mpirun -np 1 "$bin" run "$out/eq.yaml" --set output="$out/lr" --set optimizer.lr=0.0505 --threads 1 >/dev/null
mpirun -np 1 "$bin" run "$out/eq.yaml" --set output="$out/nosharp" --set 'eval={every_steps: 15, train_subset: 200}' \
  --threads 1 >/dev/null
/usr/bin/python3 "$here/../gpu/compare_traces.py" "$out/np1" "$out/np2" --rtol-first 1e-6 --rtol 1e-6 --expect-comm mpi \
  --sharpness-rtol-first 1e-6 --sharpness-rtol 1e-6 | tee "$out/np.txt"
grep -q "sharpness at 3 evaluations" "$out/np.txt" || { echo "sharpness not compared at 3 evaluations"; exit 1; }
set +e
/usr/bin/python3 "$here/../gpu/compare_traces.py" "$out/np1" "$out/lr" --rtol 1 --sharpness-rtol-first 1e-12 \
  --sharpness-rtol 1e-6 >"$out/lr-sharp.txt"
rc=$?
set -e
cat "$out/lr-sharp.txt"
# the same initial parameters: step 0 agrees to the bit; the later ones do not
[ $rc -eq 1 ] && grep -q "rel diff 0.00e+00 (rtol 1e-12); later max rel diff .*: FAIL" "$out/lr-sharp.txt" ||
  { echo "a different lr's later sharpness was not reported (rc $rc)"; exit 1; }
set +e; /usr/bin/python3 "$here/../gpu/compare_traces.py" "$out/np1" "$out/nosharp" --sharpness-rtol-first 1e-3 >"$out/ns.txt"; rc=$?; set -e
[ $rc -eq 1 ] && grep -q "sharpness measured at 3 vs 0 evaluations" "$out/ns.txt" ||
  { echo "a run without sharpness was not reported"; cat "$out/ns.txt"; exit 1; }
set +e
/usr/bin/python3 "$here/../gpu/compare_traces.py" "$out/np1" "$out/lr" --rtol 1e-3 >"$out/lr.txt"
rc=$?
set -e
cat "$out/lr.txt"
[ $rc -eq 1 ] && grep -q FAIL "$out/lr.txt" || { echo "a different lr was not reported (rc $rc)"; exit 1; }
set +e; /usr/bin/python3 "$here/../gpu/compare_traces.py" "$out/np1" "$out/np2" --expect-comm nccl >"$out/comm.txt"; rc=$?; set -e
[ $rc -eq 1 ] && grep -q "records comm 'mpi', expected 'nccl'" "$out/comm.txt" || { echo "a wrong communicator was not reported"; exit 1; }
rm -rf "$out/np2/runs/one_b.h5"
set +e; /usr/bin/python3 "$here/../gpu/compare_traces.py" "$out/np1" "$out/np2" >/dev/null; rc=$?; set -e
[ $rc -eq 1 ] || { echo "a missing run was not reported"; exit 1; }
echo "compare_traces OK"
