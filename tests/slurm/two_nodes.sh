#!/usr/bin/env bash
# A real two-node Slurm on this machine (issue 15). The two nodes are the two
# test hosts of tests/e2e/netns.sh: network namespaces with hostnames of their
# own (UTS), joined by a veth link. slurmctld and node A's slurmd run on host
# A, node B's slurmd on host B (each slurmd's hostname is its NodeName, its
# NodeAddr the host's veth address); one munged serves both, its socket a file
# that both namespaces see. Config, state, spool and logs are private to
# OUTDIR. Studies go through launch/submit.sh (--nodes 2 --tasks-per-node 1),
# whose job starts the ranks with srun --mpi=pmix: slurmd on each host starts
# that host's rank, so the ranks run on both hosts, Open MPI over TCP on the
# veth only (OMPI_MCA_* in the job's environment).
#   nodes     both nodes register and are idle (sinfo)
#   across    a study of two 2-rank runs (one group, a rank on each node)
#             completes; the run files pass the schema check, summary.csv says
#             completed, each run's /layout/hosts names both nodes
#   timelimit a run spanning both nodes held (BATCHSCOPE_HOLD_AT_STEP) until
#             Slurm's SIGUSR1 before its 2-minute limit: the ranks on both
#             nodes checkpoint and exit 75, the job requeues itself and resumes
#             until the study completes; the run file holds steps 1..T, no gap,
#             no duplicate
# The cluster setup is copied from tests/slurm/run.sh (one node), changed for
# two namespaced nodes. Root only (namespaces, the daemons); without it the
# test fails and says so. Whatever way the script ends (a failure, INT, TERM),
# jobs are cancelled, the daemons stopped, the namespaces deleted (every
# process in them killed) and the temporary folder removed.
#   tests/slurm/two_nodes.sh BIN OUTDIR
set -uo pipefail
bin=$(realpath "$1")
out=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
t0=$(date +%s)
passes=0 fails=0
say() { echo "[slurm2 $(( $(date +%s) - t0 ))s] $*"; }
pass() { passes=$((passes + 1)); say "PASS: $*"; }
fail() { fails=$((fails + 1)); say "FAIL: $*"; }
fatal() {
  say "FAIL: $*"
  echo "slurm.two_nodes: $passes passed, $((fails + 1)) failed (the two-node Slurm could not be set up: see above)"
  exit 1
}

# --- root, packages ----------------------------------------------------------------
[ "$(id -u)" -eq 0 ] \
  || fatal "two Slurm nodes in network namespaces need root (ip netns, unshare --uts, slurmctld/slurmd); run as root, or leave this test out: tests/run.sh -E slurm.two_nodes"
for c in ip unshare nsenter slurmctld slurmd sbatch munged mpirun; do
  command -v "$c" >/dev/null || fatal "$c not found (apt-get install slurm-wlm munge iproute2 util-linux openmpi-bin)"
done

# --- two hosts, one munged -------------------------------------------------------------
while read -r v; do unset "$v"; done < <(env | sed -n 's/^\(\(SLURM\|SBATCH\|SRUN\|SALLOC\)_[A-Za-z0-9_]*\)=.*/\1/p')
rm -rf "$out"
mkdir -p "$out"/{state,log}
out=$(cd "$out" && pwd)
# shellcheck source=tests/e2e/netns.sh
source "$root/tests/e2e/netns.sh"
hosts_up   # exits on failure, saying why; its trap is replaced by cleanup below
say "hosts: $host_a ($addr_a, namespace $ns_a), $host_b ($addr_b, namespace $ns_b)"
# Unix socket paths must stay short: munged's socket and the pid files live in
# /tmp, which both namespaces share (a path socket is reached through the file
# system, not the network namespace).
run=$(mktemp -d /tmp/bs-slurm2.XXXXXX)
chmod 755 "$run"
mkdir -m 700 "$run/munge"

daemons=() munged_pid=
cleanup() {
  trap '' INT TERM
  if [ ${#daemons[@]} -gt 0 ]; then
    on_host "$host_a" scancel --full --user="$(id -un)" 2>/dev/null
    for _ in $(seq 30); do [ -z "$(on_host "$host_a" squeue -h 2>/dev/null)" ] && break; sleep 1; done
    local i
    for ((i = ${#daemons[@]} - 1; i >= 0; i--)); do   # slurmd B, slurmd A, then slurmctld
      kill "${daemons[$i]}" 2>/dev/null
      for _ in $(seq 20); do kill -0 "${daemons[$i]}" 2>/dev/null || break; sleep 0.5; done
      kill -9 "${daemons[$i]}" 2>/dev/null
    done
  fi
  hosts_down   # and every process left in either namespace (job steps, ranks)
  if [ -n "$munged_pid" ]; then
    kill "$munged_pid" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$munged_pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$munged_pid" 2>/dev/null
  fi
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mungekey -c -k "$run/munge/munge.key" >/dev/null 2>&1 \
  || { dd if=/dev/urandom of="$run/munge/munge.key" bs=1024 count=1 status=none; chmod 400 "$run/munge/munge.key"; }
munged -F --socket="$run/munge.sock" --key-file="$run/munge/munge.key" --log-file="$out/log/munged.log" \
  --pid-file="$run/munged.pid" --seed-file="$run/munge/munged.seed" >"$out/log/munged.out" 2>&1 &
munged_pid=$!
for _ in $(seq 50); do [ -S "$run/munge.sock" ] && break; sleep 0.2; done
[ -S "$run/munge.sock" ] || { cat "$out/log/munged.out" "$out/log/munged.log"; fatal "munged did not start"; }

# --- the cluster: slurmctld and slurmd on host A, slurmd on host B ---------------------------
# The namespaces are new, so every port in them is free: the ports need no search.
port=16817
conf=$out/slurm.conf
cat >"$conf" <<EOF
# Two-node test cluster written by tests/slurm/two_nodes.sh
ClusterName=bstest2
SlurmctldHost=$host_a($addr_a)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also delays a requeued job's restart (default 120 s)
AuthInfo=socket=$run/munge.sock,cred_expire=10
StateSaveLocation=$out/state
# %n: the node's name, so each slurmd has a spool folder, pid and log of its own
SlurmdSpoolDir=$out/spool-%n
SlurmctldPidFile=$run/slurmctld.pid
SlurmdPidFile=$run/slurmd-%n.pid
SlurmctldLogFile=$out/log/slurmctld.log
SlurmdLogFile=$out/log/slurmd-%n.log
# and a TmpFS: srun --mpi=pmix makes TmpFS/spmix_appdir_<uid>_<job>.<step> on
# every node, and the two nodes share /tmp
TmpFS=$run/tmp-%n
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
NodeName=$host_a NodeHostname=$host_a NodeAddr=$addr_a CPUs=2 RealMemory=1000 State=UNKNOWN
NodeName=$host_b NodeHostname=$host_b NodeAddr=$addr_b CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$host_a,$host_b Default=YES MaxTime=INFINITE State=UP
EOF
mkdir -p "$out/spool-$host_a" "$out/spool-$host_b" "$run/tmp-$host_a" "$run/tmp-$host_b"
export SLURM_CONF=$conf
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Open MPI over TCP on the veth only; sbatch passes these on to the job and srun
# to the ranks on both nodes.
export OMPI_MCA_btl=tcp,self OMPI_MCA_btl_tcp_if_include=$subnet OMPI_MCA_oob_tcp_if_include=$subnet

# on_host_bg H LOG CMD...: CMD on host H in the background, output to LOG; its
# pid in bg_pid (nsenter, unshare and sh all exec into CMD). Unlike on_host
# (ip netns exec), nsenter keeps the machine's mounts: ip netns exec mounts a
# sysfs of the namespace over /sys, which hides /sys/fs/cgroup, and slurmd
# will not start without it (even with proctrack/linuxproc and task/none).
on_host_bg() {
  local hn ns log=$2
  read -r hn ns < <(host_of "$1") || return 1
  shift 2
  # shellcheck disable=SC2016 # $0 and $@ are for the inner sh
  nsenter --net="/run/netns/$ns" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$hn" "$@" >"$log" 2>&1 &
  bg_pid=$!
}
on_host_bg "$host_a" "$out/log/slurmctld.out" slurmctld -D -i -f "$conf"
daemons+=("$bg_pid")
on_host_bg "$host_a" "$out/log/slurmd-$host_a.out" slurmd -D -N "$host_a" -f "$conf"
daemons+=("$bg_pid")
on_host_bg "$host_b" "$out/log/slurmd-$host_b.out" slurmd -D -N "$host_b" -f "$conf"
daemons+=("$bg_pid")
# Commands reach slurmctld on host A (the root namespace has no route to the veth).
sl() { on_host "$host_a" "$@"; }
states=
for _ in $(seq 60); do
  states=$(sl sinfo -h -N -o '%N=%T' 2>/dev/null | sort | tr '\n' ' ')
  [ "$states" = "$host_a=idle $host_b=idle " ] && break
  sleep 1 & wait $!
done
if [ "$states" = "$host_a=idle $host_b=idle " ]; then
  pass "nodes: $states(slurmctld on $host_a, slurmd $host_a in $ns_a and $host_b in $ns_b)"
else
  tail -n 20 "$out"/log/*.log "$out"/log/*.out
  fatal "nodes not both idle after 60 s (sinfo: '$states'); logs above and in $out/log"
fi
say "srun --mpi: $(sl srun --mpi=list 2>&1 | grep -o pmix | head -1 || echo none)"

# --- helpers (as in run.sh) ------------------------------------------------------------------
deadline=$((t0 + ${BS_SLURM_TEST_DEADLINE:-1500}))
bound() { local left=$((deadline - $(date +%s))); [ "$left" -lt "$1" ] && echo $((left > 0 ? left : 0)) || echo "$1"; }
field() { sl scontrol show job -o "$1" 2>/dev/null | grep -o "$2=[^ ]*" | cut -d= -f2; }
# wait_job JOBID SECONDS: waits for a final state, sets s to it. In this shell,
# not in $(...), and sleeping in `wait`, so INT or TERM run the cleanup at
# once rather than after the wait.
wait_job() {
  local jid=$1 limit end
  limit=$(bound "$2"); end=$(( $(date +%s) + limit ))
  while [ "$(date +%s)" -le "$end" ]; do
    s=$(field "$jid" JobState)
    case $s in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED) return ;; esac
    sleep 2 & wait $!
  done
  s="still-${s:-unknown}-after-${limit}s"
}
show_log() { echo "--- $1"; sed 's/^/  | /' "$1" | tail -n 40; }
submit() {  # submit NAME STUDY SUBMIT-ARGS... -- RUN-ARGS...: prints the job id (submit.sh on host A)
  local name=$1 study=$2; shift 2
  sl "$root/launch/submit.sh" "$study" --bin "$bin" --nodes 2 --tasks-per-node 1 --log "$out/$name-%j.out" "$@" \
    2>"$out/$name.submit.log"
}
# check_runs DIR NRUNS STEPS: schema check; every run completed (with
# exactly steps 1..STEPS when STEPS > 0); every run's /layout/hosts is
# [host A, host B] (world ranks 0 and 1)
check_runs() {
  PYTHONPATH="$root/analysis" /usr/bin/python3 -m batchscope_analysis check "$1" >"$1.check.log" 2>&1 \
    || { show_log "$1.check.log"; return 1; }
  /usr/bin/python3 - "$1" "$2" "$3" "$host_a" "$host_b" <<'PY'
import csv, glob, sys
import h5py
import numpy as np
out, nruns, steps, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
files = sorted(glob.glob(f"{out}/runs/*.h5"))
assert len(files) == nruns, f"{len(files)} run files, wanted {nruns}: {files}"
rows = list(csv.DictReader(open(f"{out}/summary.csv")))
assert len(rows) == nruns and all(r["status"] == "completed" for r in rows), rows
s = lambda v: v.decode() if isinstance(v, bytes) else str(v)
for path in files:
    with h5py.File(path, "r", swmr=True) as f:
        assert f["status/code"][0] == 1, f"{path}: status code {f['status/code'][0]}, wanted 1 (completed)"
        step = f["train/step"][:]
        hosts = [s(h) for h in f["layout/hosts"][:]]
        ranks = [int(r) for r in f["layout/world_ranks"][:]]
    if steps:
        assert np.array_equal(step, np.arange(1, steps + 1)), \
            f"{path}: {len(step)} step rows, unique {len(np.unique(step))}, first {step[:3]}, last {step[-3:]}"
    assert hosts == [a, b] and ranks == [0, 1], f"{path}: world ranks {ranks} on {hosts}, wanted [0, 1] on [{a}, {b}]"
    print(f"{path}: completed, {len(step)} steps, 1..{step[-1]} in order; world ranks {ranks} on {hosts}")
PY
}

# --- across: two 2-rank runs spanning both nodes ---------------------------------------------
# 2 ranks, one a node: world rank 0 on host A (the batch host), 1 on host B;
# one replica group of both trains span, then even.
cat >"$out/s.yaml" <<YAML
study: nodes
output: $out/unused
seed: 5
data: {name: fashion-mnist, train_size: 4096, test_size: 500}
model: {name: mlp, hidden: [32]}
optimizer: {name: sgd, lr: 0.05, ref_batch: 64, scaling: none, momentum: 0.9}
budget: {steps: 200}
eval: {every_steps: 50, train_subset: 300}
log: {every_steps: 10, flush_seconds: 0.2, progress_seconds: 2}
runs:
  - {name: span, batch: [16, 48]}
  - {name: even, batch: [24, 24]}
YAML
c0=$(date +%s)
if jid=$(submit across "$out/s.yaml" --time 00:10:00 -- --set output="$out/slurm-across" --threads 1); then
  wait_job "$jid" 300
  log=$out/across-$jid.out
  if [ "$s" = COMPLETED ] && grep -q "2 tasks on $host_a,$host_b\$" "$log" && check_runs "$out/slurm-across" 2 200; then
    pass "across: job $jid on $host_a,$host_b completed in $(( $(date +%s) - c0 ))s; both runs trained on both nodes, 2 run files pass the schema check, summary says completed"
  else
    fail "across: job $jid ended $s"; show_log "$log"
  fi
else
  fail "across: submit.sh failed"; show_log "$out/across.submit.log"
fi

# --- timelimit: Slurm's own warning before a 2-minute limit, on both nodes --------------------
# As in run.sh: the run (2 ranks, one on each node) holds at step 200 until
# Slurm's SIGUSR1 arrives 60..90 s after the start, so the first segment cannot
# finish first; the requeued segment resumes past step 200 and finishes.
steps=1000
c0=$(date +%s)
small=(--set data.train_size=4096 --set data.test_size=1000 --set 'eval={every_steps: 1000, train_subset: 500}'
       --set 'sweep={global_batch: [32], ranks: 2}' --set log.progress_seconds=2 --threads 1)
if jid=$(BATCHSCOPE_HOLD_AT_STEP=200 submit timelimit "$root/configs/quickstart.yaml" --time 00:02:00 --signal-seconds 30 \
           -- "${small[@]}" --set "budget={steps: $steps}" --set output="$out/slurm-timelimit"); then
  wait_job "$jid" 480
  restarts=$(field "$jid" Restarts)
  log=$out/timelimit-$jid.out
  if [ "$s" = COMPLETED ] && [ "${restarts:-0}" -ge 1 ] && grep -q "holding at step 200" "$log" && grep -q "SIGUSR1" "$log" \
     && grep -q "$host_a: task 0: Exited with exit code 75" "$log" && grep -q "$host_b: task 1: Exited with exit code 75" "$log" \
     && grep -q "exited 75" "$log" && grep -q "requeueing" "$log" \
     && check_runs "$out/slurm-timelimit" 1 "$steps"; then
    pass "timelimit: job $jid got SIGUSR1 before its limit, the ranks on both nodes exited 75, the job was requeued $restarts time(s), resumed and completed $steps contiguous steps in $(( $(date +%s) - c0 ))s"
  else
    fail "timelimit: job $jid ended $s after ${restarts:-?} restarts"; show_log "$log"
  fi
else
  fail "timelimit: submit.sh failed"; show_log "$out/timelimit.submit.log"
fi

echo "slurm.two_nodes: $passes passed, $fails failed in $(( $(date +%s) - t0 ))s (logs: $out)"
[ "$fails" -eq 0 ]
