#!/usr/bin/env bash
# Runs configs/bench/sweep32.yaml on 2 one-rank groups and prints how idle the
# groups were: the summary's "group idle" line (docs/architecture.md, "The run
# queue"), and for any binary, old ones included, the same share computed from
# the runs' own times: 1 - sum(run wall_s in summary.csv) / (2 x wall), with
# wall the study's ("wall X s" in the summary, or "study wall: X s") or else
# mpirun's elapsed time.
#   configs/bench/measure_idle.sh BATCHSCOPE OUTDIR
set -euo pipefail
bin=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
t0=$(date +%s.%N)
mpirun -np 2 --oversubscribe "$bin" run "$here/sweep32.yaml" --threads 1 --overwrite --set output="$out" \
  >"$out.log" 2>&1
t1=$(date +%s.%N)
grep -E "^(group idle|run queue):" "$out.log" || true
/usr/bin/python3 - "$out" "$t0" "$t1" <<'PY'
import csv, re, sys
out, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
runs = list(csv.DictReader(open(f"{out}/summary.csv")))
busy = sum(float(r["wall_s"]) for r in runs)
log = open(f"{out}.log").read()
m = re.search(r"wall ([0-9.]+) s x|study wall: ([0-9.]+) s", log)
wall = float(m.group(1) or m.group(2)) if m else t1 - t0
print(f"{len(runs)} runs, {busy:.1f} s inside runs (run files' wall_s), study wall {wall:.1f} s, "
      f"mpirun {t1 - t0:.1f} s: idle {100 * (1 - busy / (2 * wall)):.1f}% of 2 x wall")
PY
