#!/usr/bin/env bash
# Runs a study under mpirun with sensible defaults:
#   launch/mpirun.sh NP STUDY.yaml [batchscope run options, e.g. --set k=v --overwrite]
# NP=auto asks `batchscope plan` for the smallest world that serves the study.
# Ranks are not bound to cores: each rank sets its own LibTorch thread count
# (cores on the node / ranks on the node; override with --threads).
set -euo pipefail
BS_ROOT=$(cd "$(dirname "$0")/.." && pwd)
bin=${BATCHSCOPE_BIN:-$BS_ROOT/build/batchscope}
np=${1:?usage: launch/mpirun.sh NP|auto STUDY.yaml [options]}
study=${2:?usage: launch/mpirun.sh NP|auto STUDY.yaml [options]}
shift 2
if [ "$np" = auto ]; then
  # The error for a world of 1 names the minimum: "mpirun -np K".
  np=$("$bin" plan "$study" --ranks 1 "$@" 2>&1 | sed -n 's/.*mpirun -np \([0-9]*\).*/\1/p' | head -1)
  np=${np:-1}
fi
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
exec mpirun -np "$np" --bind-to none ${BATCHSCOPE_MPIRUN_ARGS:-} "$bin" run "$study" "$@"
