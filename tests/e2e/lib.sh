# Sourced first by every end-to-end script, with the script's arguments:
#   source "$(dirname "$0")/lib.sh" "$@"     (BATCHSCOPE_BINARY SCRATCH_DIR)
# Sets bin (the batchscope binary), out (the scratch folder, emptied), here
# (the script's folder) and root (the checkout); lets mpirun run as root (CI
# runs in containers as root) and puts the analysis package on PYTHONPATH.
bin=$1
out=$2
here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
root=$(cd "$here/../.." && pwd)
rm -rf "$out"; mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PYTHONPATH="$root/analysis${PYTHONPATH:+:$PYTHONPATH}"
