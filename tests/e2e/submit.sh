#!/usr/bin/env bash
# launch/submit.sh without a Slurm (tests/slurm/run.sh has the real one): bad
# options and bad studies fail at submit time with a message naming the option
# and exit 2; --dry-run prints the batch script and submits nothing; a stub
# sbatch gets the script and its job id is printed; and the rendered script,
# run by hand with a stub scontrol, forwards SIGUSR1 to the ranks through
# mpirun, requeues on exit 75, and its second run resumes to the end.
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
study=$root/configs/quickstart.yaml
submit=$root/launch/submit.sh
rm -rf "$out"; mkdir -p "$out/stubs"
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { fails=$((fails + 1)); echo "FAILED: $*"; }

# Stubs: sbatch saves the script and answers a job id; scontrol records its
# arguments.
cat >"$out/stubs/sbatch" <<EOF
#!/bin/sh
cat >"$out/sbatch.script"; echo "\$*" >"$out/sbatch.args"; echo "4242;cluster"
EOF
cat >"$out/stubs/scontrol" <<EOF
#!/bin/sh
echo "\$*" >>"$out/scontrol.calls"
EOF
chmod +x "$out"/stubs/*
export PATH="$out/stubs:$PATH"

expect() {  # expect CODE PATTERN -- submit.sh arguments...
  local code=$1 pattern=$2; shift 3
  local log="$out/case$((passes + fails)).log"
  timeout 60 "$submit" "$@" >"$log" 2>&1
  local rc=$?
  if [ "$rc" -eq "$code" ] && grep -q -- "$pattern" "$log"; then ok
  else bad "submit.sh $* (exit $rc, wanted $code and /$pattern/):"; sed 's/^/  | /' "$log"; fi
}
b=(--bin "$bin" --tasks-per-node 2)
expect 2 "a study file is required" -- --dry-run
expect 2 "study file '.*missing.yaml' does not exist" -- "$out/missing.yaml" "${b[@]}"
expect 2 "--time must be HH:MM:SS or D-HH:MM:SS, got '90'" -- "$study" "${b[@]}" --time 90
expect 2 "--time must be HH:MM:SS or D-HH:MM:SS, got '1:75:00'" -- "$study" "${b[@]}" --time 1:75:00
expect 2 "--nodes must be a positive whole number, got 'two'" -- "$study" "${b[@]}" --nodes two
expect 2 "--tasks-per-node must be a positive whole number, got '0'" -- "$study" --bin "$bin" --tasks-per-node 0
expect 2 "--gpus-per-node must be a positive whole number, got '4x'" -- "$study" "${b[@]}" --gpus-per-node=4x
expect 2 "--signal-seconds (120) must be shorter than --time" -- "$study" "${b[@]}" --time 00:01:00
expect 2 "--signal-seconds must be a whole number" -- "$study" "${b[@]}" --signal-seconds soon
expect 2 "--partition may hold letters" -- "$study" "${b[@]}" --partition 'gpu debug'
expect 2 "--launcher must be auto, srun or mpirun" -- "$study" "${b[@]}" --launcher ssh
expect 2 "--nodes needs a value" -- "$study" "${b[@]}" --nodes
expect 2 "unknown option '--gpus'" -- "$study" "${b[@]}" --gpus 4
expect 2 "--overwrite cannot be used" -- "$study" "${b[@]}" -- --overwrite
expect 2 "key 'optimizer.name'.*expected one of" -- "$study" "${b[@]}" -- --set optimizer.name=lamb
expect 2 "failed 'batchscope check'; nothing submitted" -- "$study" "${b[@]}" -- --set optimizer.name=lamb
expect 2 "1 ranks (--nodes 1 x --tasks-per-node 1) cannot serve the study" -- "$study" --bin "$bin"
expect 2 "--bin: '/nonexistent' is not an executable" -- "$study" --bin /nonexistent
[ ! -e "$out/sbatch.script" ] && ok || bad "a failed submit called sbatch"

# --dry-run: the script, nothing submitted
dry="$out/dry.sh"
if "$submit" "$study" "${b[@]}" --nodes 2 --gpus-per-node 4 --partition gpu --account proj1 --time 1-00:00:00 \
     --signal-seconds 90 --dry-run -- --set 'budget={steps: 7}' --set "output=$out/o ut" --threads 1 >"$dry" 2>"$out/dry.err"; then
  for want in '^#SBATCH --nodes=2$' '^#SBATCH --ntasks-per-node=2$' '^#SBATCH --gpus-per-node=4$' \
              '^#SBATCH --partition=gpu$' '^#SBATCH --account=proj1$' '^#SBATCH --time=1-00:00:00$' \
              '^#SBATCH --requeue$' '^#SBATCH --signal=B:USR1@90$' '^#SBATCH --open-mode=append$' \
              "^study=$study\$" 'scontrol requeue "$SLURM_JOB_ID"' '"$bin" run "$study" --resume'; do
    grep -q -- "$want" "$dry" && ok || bad "dry run lacks /$want/"
  done
  grep -q '{{' "$dry" && bad "dry run has unfilled fields" || ok
  bash -n "$dry" && ok || bad "dry run is not valid bash"
  # the arguments survive the quoting: the budget with its space, the output with its space
  (eval "$(grep '^run_args=' "$dry")"; [ "${run_args[1]}" = 'budget={steps: 7}' ] && [ "${run_args[3]}" = "output=$out/o ut" ]) \
    && ok || bad "dry run mangles the batchscope arguments: $(grep '^run_args=' "$dry")"
  [ ! -e "$out/sbatch.script" ] && ok || bad "--dry-run called sbatch"
else
  bad "--dry-run failed:"; sed 's/^/  | /' "$out/dry.err"
fi

# Submission through the stub sbatch prints the job id alone
run_out=$out/run
args=(-- --threads 1 --set "output=$run_out" --set data.train_size=4096 --set data.test_size=1000
      --set 'eval={every_steps: 1000, train_subset: 200}' --set 'sweep={global_batch: [32], ranks: 2}'
      --set log.progress_seconds=1 --set 'budget={steps: 600}')
jid=$("$submit" "$study" "${b[@]}" --launcher mpirun --log "$out/job.log" "${args[@]}" 2>"$out/submit.err")
[ "$jid" = 4242 ] && [ -s "$out/sbatch.script" ] && grep -q -- '--parsable' "$out/sbatch.args" && ok \
  || { bad "submission printed '$jid'"; sed 's/^/  | /' "$out/submit.err"; }

# The script itself, as Slurm would start it: SIGUSR1 to the batch shell
# reaches the ranks through mpirun, they checkpoint and exit 75, the shell
# requeues; the second start resumes and completes. The run holds at step 100
# until the signal (BATCHSCOPE_HOLD_AT_STEP), so it cannot finish before the
# signal arrives, however fast the machine; resumed past step 100, the second
# start does not hold.
script=$out/sbatch.script
export SLURM_JOB_ID=4242 SLURM_NTASKS=2 SLURM_JOB_NODELIST=localhost BATCHSCOPE_MPIRUN_ARGS=--oversubscribe
export BATCHSCOPE_HOLD_AT_STEP=100
bash "$script" >"$out/job1.log" 2>&1 &
shell=$!
for _ in $(seq 600); do grep -qs 'holding at step 100' "$out/job1.log" && break; kill -0 $shell 2>/dev/null || break; sleep 0.2; done
grep -qs 'holding at step 100' "$out/job1.log" && ok || bad "the run never held at step 100"
kill -USR1 $shell
for _ in $(seq 600); do kill -0 $shell 2>/dev/null || break; sleep 0.2; done
if kill -0 $shell 2>/dev/null; then pkill -TERM -P $shell; kill $shell; echo "(timed out)" >>"$out/job1.log"; fi
wait $shell; rc=$?
if [ "$rc" = 0 ] && grep -q "exited 75" "$out/job1.log" && grep -qx "requeue 4242" "$out/scontrol.calls" 2>/dev/null; then ok
else bad "first start: exit $rc, scontrol calls: $(cat "$out/scontrol.calls" 2>/dev/null)"; sed 's/^/  | /' "$out/job1.log"; fi
SLURM_RESTART_COUNT=1 timeout 300 bash "$script" >"$out/job2.log" 2>&1; rc=$?
if [ "$rc" = 0 ] && [ "$(wc -l <"$out/scontrol.calls")" = 1 ] && PYTHONPATH="$root/analysis" /usr/bin/python3 - "$run_out" <<'PY'
import sys, h5py, numpy as np
with h5py.File(f"{sys.argv[1]}/runs/b32_lr0.05_s1.h5", "r") as f:
    step = f["train/step"][:]
    assert f["status/code"][0] == 1 and np.array_equal(step, np.arange(1, 601)), (f["status/code"][0], step[:3], step[-3:], len(step))
PY
then ok
else bad "second start: exit $rc"; sed 's/^/  | /' "$out/job2.log"; fi

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
