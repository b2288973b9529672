#!/usr/bin/env bash
# The resume hint pastes: a 2-rank study stopped by SIGUSR1 prints
# "continue with: CMD"; CMD, run verbatim (eval) from another folder, finishes
# the study in the same output folder, under the same launcher and rank count.
# The output folder's name has a space and a quote, so the hint must quote it.
# Under Slurm (SLURM_STEP_NUM_TASKS the world size) the hint launches with srun.
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
dir="$out/it's here"
run=b64_lr0.05_s1
args=(--threads 1 --set "output=$dir" --set budget.epochs=8 --set data.train_size=1024 --set data.test_size=500
      --set 'eval={every_steps: 20, train_subset: 200}' --set log.every_steps=10 --set log.flush_seconds=0.2
      --set 'sweep={global_batch: [64], ranks: 2}')

# stop LOG COMMAND...: COMMAND stopped at step 20 (lib.sh's stop_at_hold).
stop() { stop_at_hold 20 "$run" "$@"; }

stop "$out/stop.log" mpirun -np 2 --oversubscribe "$bin" run "$root/configs/quickstart.yaml" "${args[@]}"
check "the stopped job exits 75" test $? -eq 75
hint=$(sed -n 's/^preempted: checkpoints written; continue with: //p' "$out/stop.log")
echo "hint: $hint"
check "the hint starts in the job's folder" grep -q "^cd $PWD && " <<<"$hint"
check "the hint has mpirun's own options and rank count" grep -q -- " mpirun -np 2 --oversubscribe $bin run " <<<"$hint"
check "the hint has every --set, quoted, and --threads" \
  grep -qF -- "--set 'output=$out/it'\\''s here' --set budget.epochs=8" <<<"$hint"
check "the hint has --threads and ends with --resume" grep -q -- "--threads 1 --resume$" <<<"$hint"

(cd / && eval "$hint") >"$out/resume.log" 2>&1
check "the pasted hint exits 0" test $? -eq 0
check "it continued the run from its checkpoint" test -z "$(grep 'starting it again' "$out/resume.log")"
check "the run finished in the same output folder, every step once" /usr/bin/python3 - "$dir/runs/$run.h5" <<'PY'
import sys
import h5py, numpy as np
with h5py.File(sys.argv[1], "r", swmr=True) as f:
    assert f["status/code"][0] == 1, f["status/code"][0]  # completed
    assert np.array_equal(f["train/step"][:], np.arange(1, 129)), f["train/step"][:]
PY
check "no checkpoint left after completion" test -z "$(ls "$dir/checkpoints")"

# One rank that Slurm started as the one task of its step (no mpirun above
# it): the hint launches with srun, the same --mpi and task count.
SLURM_STEP_NUM_TASKS=1 SLURM_MPI_TYPE=pmix stop "$out/srun.log" "$bin" run "$root/configs/quickstart.yaml" \
  "${args[@]}" --set output="$out/srun" --set 'sweep={global_batch: [64], ranks: 1}'
check "the one-rank job exits 75" test $? -eq 75
check "its hint launches with srun" \
  grep -q -- "continue with: cd $PWD && srun --mpi=pmix -n 1 $bin run .* --set output=$out/srun " "$out/srun.log"
summary
