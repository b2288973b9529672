#!/usr/bin/env bash
# A real Slurm on this machine: one node, its own munged, slurmctld and slurmd,
# with their config, state, logs and ports private to OUTDIR (a Slurm already
# on the machine is left alone). Studies go through launch/submit.sh:
#   basic     the quickstart, shrunk: the job completes; the run files pass the
#             schema check; summary.csv says completed
#   timelimit a run held (BATCHSCOPE_HOLD_AT_STEP) until Slurm's SIGUSR1
#             before its 2-minute limit: the ranks checkpoint and exit 75, the
#             job requeues itself and resumes until the study completes; the
#             run file holds steps 1..T, no gap, no duplicate
#   mpirun    the same through mpirun inside the allocation, the warning sent
#             by hand (scancel --batch --signal=USR1)
#   scancel   a cancelled job checkpoints, is not requeued, and a second
#             submission finishes the study
# Every signal reaches a run that holds at a step until it arrives, so no case
# depends on how fast this machine trains.
# Starting the daemons needs root (or password-less sudo); without, this test
# fails and says so. Installs slurm-wlm and munge (Debian) if missing.
#   tests/slurm/run.sh BIN OUTDIR
set -uo pipefail
bin=$(realpath "$1")
out=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
study=$root/configs/quickstart.yaml
t0=$(date +%s)
passes=0 fails=0
say() { echo "[slurm $(( $(date +%s) - t0 ))s] $*"; }
pass() { passes=$((passes + 1)); say "PASS: $*"; }
fail() { fails=$((fails + 1)); say "FAIL: $*"; }
fatal() {
  say "FAIL: $*"
  echo "slurm.cluster: $passes passed, $((fails + 1)) failed (Slurm could not be set up: see above)"
  exit 1
}

# --- root, packages ------------------------------------------------------------
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo -n true 2>/dev/null || fatal "starting slurmctld/slurmd needs root or password-less sudo (run as root, or leave this test out: tests/run.sh -E slurm.cluster)"
  sudo=(sudo -n)
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
   || ! command -v munged >/dev/null; then
  say "installing slurm-wlm munge"
  "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
    --no-install-recommends slurm-wlm munge >/dev/null || fatal "apt-get install slurm-wlm munge failed"
fi

# --- a private cluster -------------------------------------------------------------
# Only this cluster's config reaches the commands below (also when ctest itself
# runs inside a Slurm job).
while read -r v; do unset "$v"; done < <(env | sed -n 's/^\(\(SLURM\|SBATCH\|SRUN\|SALLOC\)_[A-Za-z0-9_]*\)=.*/\1/p')
rm -rf "$out"
mkdir -p "$out"/{state,spool,log}
out=$(cd "$out" && pwd)
# Unix socket paths must stay short: sockets and pid files live in /tmp.
run=$(mktemp -d /tmp/bs-slurm.XXXXXX)
chmod 755 "$run"   # munged wants the socket folder searchable by all
mkdir -m 700 "$run/munge"
node=$(hostname -s)
port_used() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=16817
while port_used "$port" || port_used $((port + 1)); do port=$((port + 2)); done
conf=$out/slurm.conf
cat >"$conf" <<EOF
# One-node test cluster written by tests/slurm/run.sh
ClusterName=bstest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also delays a requeued job's restart (default 120 s)
AuthInfo=socket=$run/munge.sock,cred_expire=10
StateSaveLocation=$out/state
SlurmdSpoolDir=$out/spool
SlurmctldPidFile=$run/slurmctld.pid
SlurmdPidFile=$run/slurmd.pid
SlurmctldLogFile=$out/log/slurmctld.log
SlurmdLogFile=$out/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$out/log/jobcomp.txt
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
JobRequeue=1
ReturnToService=2
MinJobAge=900
KillWait=20
NodeName=$node NodeHostname=$node NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$conf
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

pids=()
cleanup() {
  if [ ${#pids[@]} -gt 0 ]; then
    scancel --full --user="$(id -un)" 2>/dev/null
    for _ in $(seq 30); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 1; done
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do   # slurmd, slurmctld, then munged
      "${sudo[@]}" kill "${pids[$i]}" 2>/dev/null
      for _ in $(seq 20); do "${sudo[@]}" kill -0 "${pids[$i]}" 2>/dev/null || break; sleep 0.5; done
      "${sudo[@]}" kill -9 "${pids[$i]}" 2>/dev/null
    done
  fi
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${sudo[@]}" mungekey -c -k "$run/munge/munge.key" >/dev/null 2>&1 \
  || { "${sudo[@]}" dd if=/dev/urandom of="$run/munge/munge.key" bs=1024 count=1 status=none; "${sudo[@]}" chmod 400 "$run/munge/munge.key"; }
"${sudo[@]}" munged -F --socket="$run/munge.sock" --key-file="$run/munge/munge.key" --log-file="$out/log/munged.log" \
  --pid-file="$run/munged.pid" --seed-file="$run/munge/munged.seed" >"$out/log/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$run/munge.sock" ] && break; sleep 0.2; done
[ -S "$run/munge.sock" ] || { cat "$out/log/munged.out" "$out/log/munged.log"; fatal "munged did not start"; }
"${sudo[@]}" slurmctld -D -i -f "$conf" >"$out/log/slurmctld.out" 2>&1 &
pids+=($!)
"${sudo[@]}" slurmd -D -N "$node" -f "$conf" >"$out/log/slurmd.out" 2>&1 &
pids+=($!)
state=
for _ in $(seq 60); do
  state=$(sinfo -h -n "$node" -o %T 2>/dev/null)
  [ "$state" = idle ] && break
  sleep 1
done
if [ "$state" != idle ]; then
  tail -n 20 "$out"/log/*.log "$out"/log/*.out
  fatal "node $node not idle after 60 s (state '$state'); logs above and in $out/log"
fi
say "cluster up: node $node idle, slurmctld port $port, srun --mpi: $(srun --mpi=list 2>&1 | grep -o pmix | head -1 || echo none)"

# --- helpers ----------------------------------------------------------------------
# Every wait is bounded, and all of them together by a deadline well inside
# ctest's TIMEOUT, so the cleanup above always runs.
deadline=$((t0 + ${BS_SLURM_TEST_DEADLINE:-1500}))
bound() { local left=$((deadline - $(date +%s))); [ "$left" -lt "$1" ] && echo $((left > 0 ? left : 0)) || echo "$1"; }
field() { scontrol show job -o "$1" 2>/dev/null | grep -o "$2=[^ ]*" | cut -d= -f2; }
# wait_job JOBID SECONDS: waits for a final state, prints it
wait_job() {
  local jid=$1 limit s end
  limit=$(bound "$2"); end=$(( $(date +%s) + limit ))
  while [ "$(date +%s)" -le "$end" ]; do
    s=$(field "$jid" JobState)
    case $s in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED) echo "$s"; return ;; esac
    sleep 1
  done
  echo "still-${s:-unknown}-after-${limit}s"
}
# wait_for SECONDS COMMAND...: polls until the command succeeds
wait_for() {
  local end; end=$(( $(date +%s) + $(bound "$1") )); shift
  while [ "$(date +%s)" -le "$end" ]; do "$@" && return 0; sleep 1; done
  return 1
}
show_log() { echo "--- $1"; sed 's/^/  | /' "$1" | tail -n 40; }
submit() {  # submit NAME SUBMIT-ARGS... -- RUN-ARGS...: prints the job id
  local name=$1; shift
  "$root/launch/submit.sh" "$study" --bin "$bin" --tasks-per-node 2 --log "$out/$name-%j.out" "$@" 2>"$out/$name.submit.log"
}
# check_runs DIR NRUNS [STEPS]: schema check; every run completed (with exactly
# steps 1..STEPS, no duplicate or gap, when STEPS is given)
check_runs() {
  PYTHONPATH="$root/analysis" /usr/bin/python3 -m batchscope_analysis check "$1" >"$1.check.log" 2>&1 \
    || { show_log "$1.check.log"; return 1; }
  /usr/bin/python3 - "$1" "$2" "${3:-0}" <<'PY'
import csv, glob, sys
import h5py
import numpy as np
out, nruns, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
files = sorted(glob.glob(f"{out}/runs/*.h5"))
assert len(files) == nruns, f"{len(files)} run files, wanted {nruns}: {files}"
rows = list(csv.DictReader(open(f"{out}/summary.csv")))
assert len(rows) == nruns and all(r["status"] == "completed" for r in rows), rows
for path in files:
    with h5py.File(path, "r", swmr=True) as f:
        assert f["status/code"][0] == 1, f"{path}: status code {f['status/code'][0]}, wanted 1 (completed)"
        step = f["train/step"][:]
        if steps:
            assert np.array_equal(step, np.arange(1, steps + 1)), \
                f"{path}: {len(step)} step rows, unique {len(np.unique(step))}, first {step[:3]}, last {step[-3:]}"
        print(f"{path}: completed, {len(step)} steps, 1..{step[-1]} in order")
PY
}

small=(--set data.train_size=4096 --set data.test_size=1000 --set 'eval={every_steps: 1000, train_subset: 500}'
       --set 'sweep={global_batch: [32], ranks: 2}' --set log.progress_seconds=2 --threads 1)

# --- basic: the quickstart, shrunk -------------------------------------------------
if jid=$(submit basic --time 00:10:00 -- --set 'budget={steps: 30}' --set 'sweep.lr=[0.05]' --set data.train_size=4096 --set data.test_size=2000 \
           --set eval.train_subset=500 --set output="$out/slurm-basic" --threads 1); then
  s=$(wait_job "$jid" 180)
  if [ "$s" = COMPLETED ] && check_runs "$out/slurm-basic" 3; then
    pass "basic: job $jid completed, 3 run files pass the schema check, summary says completed"
  else
    fail "basic: job $jid ended $s"; show_log "$out/basic-$jid.out"
  fi
else
  fail "basic: submit.sh failed"; show_log "$out/basic.submit.log"
fi

# --- timelimit: Slurm's own warning before a 2-minute limit ---------------------------
# The run holds at step 200 (BATCHSCOPE_HOLD_AT_STEP, which sbatch passes on
# with the rest of the environment) until Slurm's SIGUSR1 arrives 60..90 s
# after the start (Slurm checks limits every 30 s), so the first segment cannot
# finish first, however fast the machine; resumed past step 200, the requeued
# segment does not hold and finishes its few seconds of training.
steps=1000
if jid=$(BATCHSCOPE_HOLD_AT_STEP=200 submit timelimit --time 00:02:00 --signal-seconds 30 -- "${small[@]}" \
           --set "budget={steps: $steps}" --set output="$out/slurm-timelimit"); then
  s=$(wait_job "$jid" 420)
  restarts=$(field "$jid" Restarts)
  log=$out/timelimit-$jid.out
  if [ "$s" = COMPLETED ] && [ "${restarts:-0}" -ge 1 ] && grep -q "holding at step 200" "$log" && grep -q "SIGUSR1" "$log" \
     && grep -q "exited 75" "$log" && grep -q "requeueing" "$log" && check_runs "$out/slurm-timelimit" 1 "$steps"; then
    pass "timelimit: job $jid got SIGUSR1 before its limit, exited 75, was requeued $restarts time(s), resumed and completed $steps contiguous steps"
  else
    fail "timelimit: job $jid ended $s after ${restarts:-?} restarts"; show_log "$log"
  fi
else
  fail "timelimit: submit.sh failed"; show_log "$out/timelimit.submit.log"
fi

# --- mpirun: the warning by hand, ranks under mpirun ----------------------------------
# Signalled while the run holds at step 100: it cannot finish first.
if jid=$(BATCHSCOPE_HOLD_AT_STEP=100 submit mpirun --launcher mpirun --time 00:10:00 -- "${small[@]}" \
           --set "budget={steps: $steps}" --set output="$out/slurm-mpirun"); then
  log=$out/mpirun-$jid.out
  if wait_for 120 grep -qs 'holding at step 100' "$log"; then
    scancel --batch --signal=USR1 "$jid"
    s=$(wait_job "$jid" 240)
    restarts=$(field "$jid" Restarts)
    if [ "$s" = COMPLETED ] && [ "${restarts:-0}" = 1 ] && grep -q "exited 75" "$log" && grep -q "mpirun -np 2" "$log" \
       && check_runs "$out/slurm-mpirun" 1 "$steps"; then
      pass "mpirun: job $jid forwarded SIGUSR1 through mpirun, exited 75, requeued once, completed $steps contiguous steps"
    else
      fail "mpirun: job $jid ended $s after ${restarts:-?} restarts"; show_log "$log"
    fi
  else
    fail "mpirun: job $jid did not reach its hold at step 100 in 120 s"; show_log "$log"
  fi
else
  fail "mpirun: submit.sh failed"; show_log "$out/mpirun.submit.log"
fi

# --- scancel: no requeue; submitting again finishes the study --------------------------
args=(-- "${small[@]}" --set "budget={steps: $steps}" --set output="$out/slurm-scancel")
# Cancelled while the run holds at step 100; the second job resumes past it.
if jid=$(BATCHSCOPE_HOLD_AT_STEP=100 submit scancel --time 00:10:00 "${args[@]}"); then
  log=$out/scancel-$jid.out
  if wait_for 120 grep -qs 'holding at step 100' "$log"; then
    scancel "$jid"
    s=$(wait_job "$jid" 60)
    sleep 3
    restarts=$(field "$jid" Restarts)
    code=$(/usr/bin/python3 -c 'import h5py,sys; print(h5py.File(sys.argv[1],"r",swmr=True)["status/code"][0])' \
      "$out/slurm-scancel/runs/b32_lr0.05_s1.h5" 2>&1)
    if [ "$s" = CANCELLED ] && [ "${restarts:-0}" = 0 ] && [ "$code" = 4 ] \
       && jid2=$(submit scancel2 --time 00:10:00 "${args[@]}") && [ "$(wait_job "$jid2" 180)" = COMPLETED ] \
       && check_runs "$out/slurm-scancel" 1 "$steps"; then
      pass "scancel: job $jid cancelled, not requeued, run preempted; job $jid2 resumed it to $steps contiguous steps"
    else
      fail "scancel: job $jid ended $s, restarts ${restarts:-?}, run status code $code (want CANCELLED, 0, 4), second job ${jid2:-none}"
      show_log "$log"; [ -n "${jid2:-}" ] && show_log "$out/scancel2-$jid2.out"
    fi
  else
    fail "scancel: job $jid did not reach its hold at step 100 in 120 s"; show_log "$log"
  fi
else
  fail "scancel: submit.sh failed"; show_log "$out/scancel.submit.log"
fi

echo "slurm.cluster: $passes passed, $fails failed in $(( $(date +%s) - t0 ))s (logs: $out)"
[ "$fails" -eq 0 ]
