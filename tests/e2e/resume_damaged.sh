#!/usr/bin/env bash
# A run file --resume cannot use is refused before any training and left as it
# is: truncated or not HDF5 (exit 5), or holding fewer rows than its
# checkpoint (exit 6); each message names the file, what is wrong and what to
# do. Deleting the file, as the message says, lets --resume start that run again.
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
run=b64_lr0.05_s1
args=(--threads 1 --set budget.epochs=8 --set data.train_size=1024 --set data.test_size=500
      --set 'eval={every_steps: 20, train_subset: 200}' --set log.every_steps=10 --set log.flush_seconds=0.2
      --set 'sweep={global_batch: [64], ranks: 2}')
study=(mpirun -np 2 --oversubscribe "$bin" run "$root/configs/quickstart.yaml" "${args[@]}")

# A stopped study: the run holds at step 20 until SIGUSR1, so it cannot finish.
stop_at_hold 20 "$run" "$out/stop.log" "${study[@]}" --set "output=$out/stopped"
check "the stopped job exits 75" test $? -eq 75
check "it left a checkpoint" test -f "$out/stopped/checkpoints/$run.ckpt.done"

# damaged CASE: a copy of the stopped study whose run file CASE's command damages.
damaged() {
  local dir="$out/$1"
  cp -r "$out/stopped" "$dir"
  eval "$2"
  sha256sum "$dir/runs/$run.h5" >"$dir.sum"
}
unchanged() {  # unchanged CASE: the run file is as damaged, and no half-made file was left
  sha256sum --quiet -c "$out/$1.sum" && test ! -e "$out/$1/runs/$run.h5.resume.tmp" &&
    test -f "$out/$1/checkpoints/$run.ckpt.done"
}

damaged truncated 'head -c 20000 "$out/stopped/runs/$run.h5" >"$dir/runs/$run.h5"'
expect 5 "cannot use run file $out/truncated/runs/$run.h5: it is truncated.*Delete it.*--overwrite instead of --resume" \
  -- "${study[@]}" --set "output=$out/truncated" --resume
check "the truncated run file is left as it was" unchanged truncated

damaged not_hdf5 'head -c 20000 /dev/urandom >"$dir/runs/$run.h5"'
expect 5 "cannot use run file $out/not_hdf5/runs/$run.h5: it is not an HDF5 file.*Delete it.*--overwrite instead" \
  -- "${study[@]}" --set "output=$out/not_hdf5" --resume
check "the file that is not HDF5 is left as it was" unchanged not_hdf5

# Rows the checkpoint counts on are gone (refused before training, exit 6).
damaged short '/usr/bin/python3 - "$dir/runs/$run.h5" <<PY
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f["train/step"].resize(10, axis=0)
PY'
expect 6 "$out/short/runs/$run.h5: /train/step has 10 rows, but the checkpoint is at 30.*Delete it" \
  -- "${study[@]}" --set "output=$out/short" --resume
check "the short run file is left as it was" unchanged short

rm "$out/truncated/runs/$run.h5"
expect 0 "completed" -- "${study[@]}" --set "output=$out/truncated" --resume
summary
