#!/usr/bin/env bash
# One command from a fresh clone to every test passing: installs what is
# missing (Debian packages), builds, then runs ctest (unit, MPI at 2 and 4
# ranks, end to end, a real one-node Slurm) and pytest (the analysis package),
# then, on a full run, tests/cuda/build.sh: batchscope built against PyPI's
# CUDA LibTorch 2.11 (what GPU hosts run), and its MPI tests and a short study
# where it loads without a GPU.
#   tests/run.sh [ctest options, e.g. -R e2e or -E slurm.cluster]
#   BS_CUDA_BUILD=0|1: skip the CUDA build, or run it with ctest options too
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
if [ "${BS_CUDA_BUILD:-$([ $# -eq 0 ] && echo 1 || echo 0)}" = 1 ]; then
  rc=0
  bash "$BS_ROOT/tests/cuda/build.sh" || rc=$?
  # 3: built and linked, but its CUDA libraries cannot load on this machine
  # (it says why); the build is what CI must prove.
  [ $rc -eq 0 ] || [ $rc -eq 3 ] || exit $rc
fi
