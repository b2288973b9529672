# Sourced first by every end-to-end script, with the script's arguments:
#   source "$(dirname "$0")/lib.sh" "$@"     (BATCHSCOPE_BINARY SCRATCH_DIR)
# Sets bin (the batchscope binary), out (the scratch folder, emptied), here
# (the script's folder) and root (the checkout); lets mpirun run as root (CI
# runs in containers as root) and puts the analysis package on PYTHONPATH.
# Defines check, expect and summary for scripts of many cases (below).
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
