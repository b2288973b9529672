# Sourced first by every end-to-end script, with the script's arguments:
#   source "$(dirname "$0")/lib.sh" "$@"     (BATCHSCOPE_BINARY SCRATCH_DIR)
# Sets bin (the batchscope binary), out (the scratch folder, emptied), here
# (the script's folder) and root (the checkout); lets mpirun run as root (CI
# runs in containers as root) and puts the analysis package on PYTHONPATH.
# Defines check, expect and summary for scripts of many cases, and
# stop_at_hold for a run stopped at a marker (below).
bin=$1
out=$2
here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
root=$(cd "$here/../.." && pwd)
rm -rf "$out"; mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PYTHONPATH="$root/analysis${PYTHONPATH:+:$PYTHONPATH}"

# Cases that count instead of stopping the script at the first failure; a
# script ends with `summary` (prints the counts, fails if any case failed).
fails=0 passes=0
check() {  # check NAME COMMAND...: the command succeeds
  local name=$1; shift
  if "$@"; then passes=$((passes + 1)); else fails=$((fails + 1)); echo "FAILED: $name"; fi
}
expect() {  # expect CODE PATTERN -- COMMAND...: exits CODE within 120 s and prints PATTERN
  local code=$1 pattern=$2; shift 3
  local log="$out/case$((passes + fails)).log"
  timeout 120 "$@" >"$log" 2>&1
  local rc=$?
  if [ "$rc" -eq "$code" ] && grep -q -- "$pattern" "$log"; then
    passes=$((passes + 1))
  else
    fails=$((fails + 1))
    echo "FAILED: $* (exit $rc, wanted $code and /$pattern/):"; sed 's/^/  | /' "$log"
  fi
}
summary() {
  echo "$passes passed, $fails failed"
  [ "$fails" -eq 0 ]
}

# stop_at_hold STEP RUN LOG COMMAND...: starts COMMAND (output to LOG) with
# BATCHSCOPE_HOLD_AT_STEP=STEP, so run RUN cannot finish or pass STEP before the
# signal however fast the machine; waits for RUN's "holding at step STEP" marker
# (or the job's end), sends SIGUSR1 (mpirun forwards it to the ranks) and
# returns the command's exit code.
stop_at_hold() {
  local step=$1 run=$2 log=$3; shift 3
  BATCHSCOPE_HOLD_AT_STEP=$step "$@" >"$log" 2>&1 &
  local job=$!
  for _ in $(seq 600); do
    grep -qs "^\[$run\] holding at step $step " "$log" && break
    kill -0 $job 2>/dev/null || break
    sleep 0.2
  done
  kill -USR1 $job
  wait $job
}
