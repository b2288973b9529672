#!/usr/bin/env bash
# One command from a fresh clone to every test passing: installs what is
# missing (Debian packages), builds, then runs ctest (unit, MPI at 2 and 4
# ranks, end to end, a real one-node Slurm) and pytest (the analysis package).
#   tests/run.sh [ctest options, e.g. -R e2e or -E slurm.cluster]
set -euo pipefail
BS_ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$BS_ROOT/launch/deps.sh"
bs_install_deps tests
build="$BS_ROOT/build"
bs_build "$build"
cd "$build"
ctest --output-on-failure --timeout 900 "$@"
cd "$BS_ROOT"
PYTHONPATH="$BS_ROOT/analysis" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/analysis
