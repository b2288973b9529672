#!/usr/bin/env bash
# Issue 11: does `mpirun -np 4 --oversubscribe` (two 2-rank groups) cost about
# the wall time of `mpirun -np 2` (one group) for configs/bench/oversub.yaml's
# four equal runs on a 2-core machine? Runs the two commands in turn, paired
# and alternating (2 ranks, then 4 ranks, then the next pair), and prints each
# pair's wall times, the summary's study wall of each, the ratio 4-rank/2-rank,
# and the ratios' median and range, with the load average before and after.
# The aim is a ratio of at most 1.1; no assertion is made (timings belong on a
# quiet machine).
#
#   tests/bench/oversub.sh [-b BINARY]... [-n PAIRS] [-s STEPS] [-c STUDY]
#
#   -b BINARY  batchscope to time (default build/batchscope); give -b twice
#              (old, new) to alternate the binaries inside each pair round
#   -n PAIRS   pairs per binary (default 6)
#   -s STEPS   override budget.steps: 1 times the start-up alone (default: the
#              study's 1200)
#   -c STUDY   the study file (default configs/bench/oversub.yaml)
#
# Example, old binary against new, start-up only:
#   tests/bench/oversub.sh -b /tmp/batchscope-old -b build/batchscope -n 6 -s 1
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
binaries=()
pairs=6
steps=""
study="$here/configs/bench/oversub.yaml"
while getopts "b:n:s:c:h" opt; do
  case $opt in
    b) binaries+=("$OPTARG") ;;
    n) pairs=$OPTARG ;;
    s) steps=$OPTARG ;;
    c) study=$OPTARG ;;
    *) sed -n '2,21p' "$0"; exit 2 ;;
  esac
done
[ ${#binaries[@]} -gt 0 ] || binaries=("$here/build/batchscope")
for b in "${binaries[@]}"; do
  [ -x "$b" ] || { echo "oversub.sh: $b is not an executable batchscope (-b BINARY)" >&2; exit 2; }
done

out=$(mktemp -d /tmp/bs_oversub.XXXXXX)
trap 'rm -rf "$out"' EXIT
sets=(--set "output=$out/o" --overwrite)
[ -z "$steps" ] || sets+=(--set "budget.steps=$steps")

# Prints "WALL STUDY_WALL" for one mpirun of `$1` with $2 ranks.
one() {
  local log="$out/log" t0 t1
  t0=$(date +%s.%N)
  mpirun -np "$2" --oversubscribe "$1" run "$study" "${sets[@]}" > "$log" 2>&1 ||
    { cat "$log" >&2; echo "oversub.sh: mpirun -np $2 $1 failed" >&2; exit 1; }
  t1=$(date +%s.%N)
  local study_wall
  study_wall=$(sed -n 's/.*group idle:.*(wall \([0-9.]*\) s.*/\1/p' "$log" | tail -1)
  echo "$(echo "$t1 - $t0" | bc -l) ${study_wall:-nan}"
}

echo "load before: $(uptime)"
: > "$out/rows"
for ((i = 1; i <= pairs; ++i)); do
  for b in "${binaries[@]}"; do
    read -r w2 s2 <<< "$(one "$b" 2)"
    read -r w4 s4 <<< "$(one "$b" 4)"
    printf '%s %d %.2f %.2f %s %s\n' "$b" "$i" "$w2" "$w4" "$s2" "$s4" | tee -a "$out/rows"
  done
done
echo "load after:  $(uptime)"

python3 - "$out/rows" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    b, _, w2, w4, s2, s4 = line.split()
    rows.setdefault(b, []).append((float(w2), float(w4), float(s2), float(s4)))
def line(name, xs):
    return f"  {name:28s} median {statistics.median(xs):.3f}  range {min(xs):.3f}-{max(xs):.3f}"
for b, rs in rows.items():
    print(f"{b} ({len(rs)} pairs; wall of the mpirun command, study wall from the summary):")
    print(line("wall 2 ranks (s)", [r[0] for r in rs]))
    print(line("wall 4 ranks (s)", [r[1] for r in rs]))
    print(line("ratio 4/2 wall", [r[1] / r[0] for r in rs]))
    if all(r[2] == r[2] and r[3] == r[3] and r[2] > 0 for r in rs):
        print(line("ratio 4/2 study wall", [r[3] / r[2] for r in rs]))
EOF
