#!/usr/bin/env bash
# The BLAS LibTorch computes with, found at run time: `batchscope version`
# names it (a library that exists), every run file records the same in its
# `blas` attribute, and `run` warns once (rank 0) with the fix when it is the
# reference BLAS, never otherwise. Debian's reference BLAS is forced in front
# of the installed alternative with LD_LIBRARY_PATH (mpirun's ranks inherit
# it), when it is installed.
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
study=$root/configs/quickstart.yaml
tiny=(--threads 1 --set 'budget={steps: 4}' --set 'sweep={global_batch: [32], ranks: 2}' --set data.train_size=512
      --set data.test_size=256 --set 'eval={every_steps: 100, train_subset: 64}' --overwrite)
fix="sudo apt-get install libopenblas0-openmp"

# version_blas [ENV...]: the text after "BLAS: " in `batchscope version`
version_blas() { env "$@" "$bin" version | sed -n 's/^BLAS: //p'; }
# run_blas DIR [ENV...]: trains the tiny study on 2 ranks into DIR; DIR.log has the console
run_blas() {
  local dir=$1; shift
  env "$@" mpirun -np 2 --oversubscribe "$bin" run "$study" "${tiny[@]}" --set output="$dir" \
    >"$dir.log" 2>&1
}
attr() { /usr/bin/python3 -c 'import h5py,sys; print(h5py.File(sys.argv[1], "r")["/"].attrs["blas"])' "$1"; }
named_file_exists() {  # the path at the end of a description, or inside its parentheses
  local p=${1##* }; p=${p#(}; p=${p%)}
  [ -e "$p" ] || { echo "  '$1' names no existing file"; return 1; }
}

# The installed BLAS, whatever it is.
blas=$(version_blas)
echo "installed: $blas"
check "version names a BLAS" test -n "$blas"
check "version names a library that exists" named_file_exists "$blas"
run_blas "$out/installed"
check "run exits 0" test $? -eq 0
check "the run file records what version says" test "$(attr "$out/installed/runs/b32_lr0.05_s1.h5")" = "$blas"
case $blas in
  "reference BLAS"*) check "run warns once about the reference BLAS" test "$(grep -c "$fix" "$out/installed.log")" -eq 1 ;;
  *) check "no BLAS warning with $blas" test "$(grep -c "reference BLAS" "$out/installed.log")" -eq 0 ;;
esac

# The reference BLAS, forced.
ref_dir=/usr/lib/x86_64-linux-gnu/blas
if [ -e "$ref_dir/libblas.so.3" ]; then
  ref=$(version_blas LD_LIBRARY_PATH="$ref_dir")
  echo "forced: $ref"
  check "version says reference BLAS" grep -q "^reference BLAS ($ref_dir/libblas.so" <<<"$ref"
  run_blas "$out/reference" LD_LIBRARY_PATH="$ref_dir"
  check "run with the reference BLAS exits 0" test $? -eq 0
  check "run warns exactly once (rank 0), naming the library and the fix" \
    test "$(grep -c "warning: LibTorch is using the reference BLAS ($ref_dir/libblas.so.*$fix" "$out/reference.log")" -eq 1
  check "the run file records the reference BLAS" test "$(attr "$out/reference/runs/b32_lr0.05_s1.h5")" = "$ref"
else
  echo "($ref_dir/libblas.so.3 not installed: the forced reference case is skipped)"
fi
summary
