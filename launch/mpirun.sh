#!/usr/bin/env bash
# Runs a study under mpirun with sensible defaults:
#   launch/mpirun.sh NP STUDY.yaml [batchscope run options, e.g. --set k=v --overwrite]
# NP=auto asks `batchscope plan` for the smallest world that serves the study.
# Ranks are not bound to cores: each rank sets its own LibTorch thread count
# (the cores it may run on / ranks on the node; override with --threads), and
# with more ranks than cores it has Open MPI yield while it waits (even when a
# hostfile claims the slots). On a machine shared with other busy programs,
# ranks of several threads each may add OMP_WAIT_POLICY=passive: measured on
# 2 cores (1 rank, 2 threads), a busy `yes` made the study 4-6x slower with
# libgomp's default spinning and 2-2.5x with passive threads, but passive threads
# cost 1.8x on an idle machine, so it is not the default.
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
