#!/usr/bin/env bash
# One command from a fresh clone to a trained batch-size study and its plots:
# installs what is missing (Debian packages), builds, runs
# configs/quickstart.yaml under mpirun, then the analysis.
#   launch/quickstart.sh [NP] [--set key=value ...]
# NP: MPI ranks (default 4). Results replace those of an earlier quickstart.
set -euo pipefail
BS_ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$BS_ROOT/launch/deps.sh"
np=${1:-4}
[ $# -gt 0 ] && shift
bs_install_deps
bs_build "$BS_ROOT/build"
out="$BS_ROOT/results/quickstart"
start=$(date +%s)
mpirun -np "$np" --oversubscribe "$BS_ROOT/build/batchscope" run "$BS_ROOT/configs/quickstart.yaml" \
  --set output="$out" --overwrite "$@"
PYTHONPATH="$BS_ROOT/analysis" /usr/bin/python3 -m batchscope_analysis summary "$out"
PYTHONPATH="$BS_ROOT/analysis" /usr/bin/python3 -m batchscope_analysis report "$out"
echo
echo "quickstart done in $(( $(date +%s) - start ))s of training and analysis"
echo "run files:  $out/runs/*.h5   (schema: docs/run-file.md)"
echo "summary:    $out/summary.csv"
echo "report:     $out/report.html (figures in $out/figures/)"
