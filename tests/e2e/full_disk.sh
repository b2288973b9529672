#!/usr/bin/env bash
# A full output file system (issue 15): the study's output lives on a small
# tmpfs; a run holds at step 60 (BATCHSCOPE_HOLD_AT_STEP, after its periodic
# checkpoint at step 50), the disk is filled while it holds, and SIGUSR1 sends
# it on into the full disk. Two cases: the run file's next rows find no space
# (HDF5 fails), and the next checkpoint finds too little. Each must end the
# 2-rank job with exit 5 and a message naming the file, leave the step-50
# checkpoint whole, and, once the filler is removed, --resume must finish the
# run with /train/loss bit-identical to an uninterrupted run's.
# Root only (a tmpfs mounted in a private mount namespace); others skip.
set -uo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIPPED: e2e.full_disk mounts a small tmpfs, which needs root"
  exit 0
fi
# The whole script runs in a private mount namespace: the tmpfs is gone when it
# ends, however it ends.
if [ -z "${BS_FULL_DISK_NS:-}" ]; then
  if ! unshare -m --propagation private true 2>/dev/null; then
    echo "SKIPPED: e2e.full_disk cannot make a private mount namespace here (unshare -m failed)"
    exit 0
  fi
  BS_FULL_DISK_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh" "$@"
disk=$out/disk
mkdir -p "$disk"
if ! mount -t tmpfs -o size=4m tmpfs "$disk"; then
  echo "SKIPPED: e2e.full_disk cannot mount a tmpfs here"
  exit 0
fi

cat >"$out/s.yaml" <<'EOF'
study: full
data: {name: synthetic, synthetic_train: 2048, synthetic_test: 128}
model: {name: mlp, hidden: [64]}
budget: {steps: 200}
eval: {train_subset: 64, every_steps: 50}
log: {every_steps: 10, flush_seconds: 0.001}
checkpoint: {every_steps: 50, every_minutes: 0}
runs: [{name: r, batch: [8, 8]}]
EOF
run=(mpirun -np 2 --oversubscribe "$bin" run "$out/s.yaml" --threads 1)
avail() { echo $(($(stat -f -c '%a * %S' "$disk"))); }

# case NAME LEAVE [--set ...]: runs the study on the tmpfs, holding at step 60;
# at the hold, fills the disk to leave LEAVE bytes (a number, or "half" of the
# step-50 checkpoint), sends SIGUSR1, and keeps the exit code in $rc.
case_run() {
  local name=$1 leave=$2; shift 2
  local dir=$disk/$name log=$out/$name.log
  BATCHSCOPE_HOLD_AT_STEP=60 "${run[@]}" --set output="$dir" "$@" >"$log" 2>&1 &
  local job=$!
  for _ in $(seq 600); do
    grep -qs '^\[r\] holding at step 60 ' "$log" && break
    kill -0 $job 2>/dev/null || break
    sleep 0.2
  done
  [ "$leave" = half ] && leave=$(($(stat -c %s "$dir/checkpoints/r.ckpt") / 2))
  # Whole pages: tmpfs counts them; fallocate takes exactly what it is asked.
  fallocate -l $(($(avail) - leave / 4096 * 4096)) "$disk/filler.$name"
  echo "case $name: $(avail) bytes left on the tmpfs at step 60"
  cp "$dir/checkpoints/r.ckpt" "$out/$name.ckpt.before"
  kill -USR1 $job
  # A job that hangs instead of ending fails the exit-code check (143): mpirun
  # gets SIGTERM after 120 s.
  (trap 'kill $nap; exit' TERM; sleep 120 & nap=$!; wait $nap; kill -TERM $job) >/dev/null 2>&1 &
  local guard=$!
  wait $job
  rc=$?
  kill $guard 2>/dev/null
  echo "case $name: exit $rc"
}

# The uninterrupted reference, on an ordinary folder.
"${run[@]}" --set output="$out/ref" >"$out/ref.log" 2>&1
check "the reference run exits 0" test $? -eq 0
layers=(--set gns.per_layer=true --set gns.microbatches=4 --set 'model.hidden=[32, 32, 32, 32, 32]')
"${run[@]}" --set output="$out/ref-layers" "${layers[@]}" >"$out/ref-layers.log" 2>&1
check "the per-layer reference run exits 0" test $? -eq 0

# after NAME FILE REF: the failed run's exit, message and checkpoint; then the
# filler goes, --resume finishes, and the losses equal the reference's.
after() {
  local name=$1 file=$2 ref=$3; shift 3
  local dir=$disk/$name log=$out/$name.log
  check "$name: exit 5" test "$rc" -eq 5
  # Not anchored at a line start: rank 0's banner (stdout) and its error
  # (stderr) share the log and can interleave within a line.
  check "$name: the message names $file and the lack of space" \
    grep -q "$dir/$file.*: No space left on device" "$log"
  check "$name: it is batchscope's error" grep -q "batchscope: error" "$log"
  grep "batchscope: error" "$log" | head -2
  check "$name: no crash, no HDF5 error stack" bash -c "! grep -q 'HDF5-DIAG\|Segmentation\|core dumped' '$log'"
  check "$name: the step-50 checkpoint is whole, with its marker" \
    bash -c "cmp -s '$out/$name.ckpt.before' '$dir/checkpoints/r.ckpt' && [ \"\$(cat '$dir/checkpoints/r.ckpt.done')\" = 50 ]"
  check "$name: no temporary checkpoint left taking space" test -z "$(ls "$dir/checkpoints" | grep tmp)"
  check "$name: the failed run's file opens, with the rows up to step 50" /usr/bin/python3 -c "
import h5py, numpy as np
with h5py.File('$dir/runs/r.h5', 'r', swmr=True) as f:
    np.save('$out/$name.wall.npy', f['train/wall_s'][:50])
    assert len(f['train/wall_s']) >= 50"
  if [ "$name" = rows ]; then  # the disk is still full: --resume cannot copy the run file either
    expect 5 "$dir/runs/r.h5.resume.tmp: No space left on device" -- "${run[@]}" --set output="$dir" "$@" --resume
    check "$name: a --resume on the full disk leaves the checkpoint and no temporary file" \
      bash -c "cmp -s '$out/$name.ckpt.before' '$dir/checkpoints/r.ckpt' && test -f '$dir/checkpoints/r.ckpt.done' \
               && ! ls '$dir/runs' | grep -q tmp"
  fi
  rm -f "$disk/filler.$name"
  timeout 120 "${run[@]}" --set output="$dir" "$@" --resume >"$out/$name-resume.log" 2>&1
  local r=$?
  check "$name: --resume exits 0 once the filler is gone" test $r -eq 0
  [ $r -eq 0 ] || sed 's/^/  | /' "$out/$name-resume.log"
  check "$name: --resume continues from the checkpoint, not from the start" \
    bash -c "! grep -q 'no checkpoint, starting it again' '$out/$name-resume.log'"
  check "$name: the resumed run's losses equal the uninterrupted run's, bit for bit" \
    /usr/bin/python3 - "$dir/runs/r.h5" "$ref/runs/r.h5" "$out/$name.wall.npy" <<'PY'
import sys
import h5py, numpy as np
with h5py.File(sys.argv[1], "r", swmr=True) as a, h5py.File(sys.argv[2], "r", swmr=True) as b:
    # Rows 1..50 come from the failed run's file (the checkpoint's step), not
    # from training again: their wall times are the failed run's.
    assert np.array_equal(a["train/wall_s"][:50], np.load(sys.argv[3])), "steps 1..50 were trained again"
    assert a["status/code"][0] == 1, a["status/code"][0]
    assert np.array_equal(a["train/step"][:], np.arange(1, 201)), "no duplicate and no missing step"
    la, lb = a["train/loss"][:], b["train/loss"][:]
    assert la.tobytes() == lb.tobytes(), np.flatnonzero(la != lb)[:5]
print("200 losses equal, bit for bit")
PY
}

# The run file's next rows find no space at all: /gns/sqnorm_layer_micro takes
# a new chunk of 64 rows every 64 steps (here 64 x 8 micro-batches x 12
# tensors x 4 bytes, 24 KiB: more than the last page of the file can hide), so
# steps 61..70 need one.
case_run rows 0 "${layers[@]}"
after rows runs/r.h5 "$out/ref-layers" "${layers[@]}"

# The checkpoint at step 70 (the stop) finds half its size free.
case_run ckpt half
after ckpt checkpoints/r.ckpt "$out/ref"

summary
