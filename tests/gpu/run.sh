#!/usr/bin/env bash
# One call on a GPU host: build batchscope against that host's Python
# LibTorch (CUDA) and NCCL, run the GPU tests and the benchmark, print a
# summary. The host needs no network: run tests/gpu/prepare.sh on a machine
# with one first and bring .gpu-carry/ along (data, baseline, Debian packages).
#
# Tests (each must pass; the summary counts failures and the exit code is 1
# if any failed):
#   nccl-1rank-groups  the same study (two 1-rank runs) on the CPU and on the
#                      GPU with NCCL, one group per run: loss traces agree
#                      within RTOL, and the 2-group NCCL study completes
#   mpi-shared-gpu     a 2-rank heterogeneous run ([16, 48]) on the CPU and on
#                      the one GPU over MPI (host-staged): traces agree
#   nccl-refused       comm: nccl with two ranks of a group on one GPU exits 2
#                      with a message that says to use comm: mpi
#   own-model-cuda     configs/own_model's TorchScript CNN with BatchNorm on
#                      CUDA vs the CPU: traces agree within RTOL
#   nccl-hung-peer     (2+ GPUs only) a rank stopped with SIGSTOP 25 s in, with
#                      comm_timeout_s 20: the job ends within 140 s of its
#                      start, naming the rank and the NCCL operation
# Then tests/bench/compare.py on the GPU: mlp and cnn at per-rank batch 32,
# 128, 1024 and 8192, batchscope vs the DDP baseline (NCCL).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
carry=${BS_CARRY:-$root/.gpu-carry}
out=${OUT:-$root/build-gpu/out}
build=$root/build-gpu
RTOL=${RTOL:-1e-3}
mkdir -p "$out" "$build"
exec > >(tee "$out/gpu-run.log") 2>&1
cd "$root"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PYTHONUNBUFFERED=1
py=$(command -v python3)
nvidia-smi -L || true
[ -d "$carry/fashion-mnist" ] || { echo "no $carry/fashion-mnist: run tests/gpu/prepare.sh and carry .gpu-carry"; exit 2; }

# --- dependencies: the host's own where it has them, else the carried debs,
# unpacked (not installed) under /tmp/bsdeps and relocated by prefix.
deps=/tmp/bsdeps
cmake_args=()
if ! command -v mpicc >/dev/null || ! command -v mpirun >/dev/null; then
  mkdir -p $deps
  for f in "$carry"/debs/*.deb; do dpkg -x "$f" $deps; done
  export OPAL_PREFIX=$deps/usr PATH=$deps/usr/bin:$PATH
  export LD_LIBRARY_PATH=$deps/usr/lib/x86_64-linux-gnu:$deps/usr/lib/x86_64-linux-gnu/openmpi/lib:$deps/usr/lib/x86_64-linux-gnu/hdf5/serial${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  ln -sf mpirun.openmpi $deps/usr/bin/mpirun
  ln -sf mpicc.openmpi $deps/usr/bin/mpicc
  cmake_args+=(-DMPI_C_COMPILER=$deps/usr/bin/mpicc.openmpi -DMPIEXEC_EXECUTABLE=$deps/usr/bin/mpirun.openmpi
    -DHDF5_ROOT=$deps/usr/lib/x86_64-linux-gnu/hdf5/serial -DHDF5_NO_FIND_PACKAGE_CONFIG_FILE=ON)
  prefix_extra="$deps/usr;$deps/usr/lib/x86_64-linux-gnu/cmake;$deps/usr/share/cmake"
fi
torch_prefix=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)')
nccl_root=$($py -c 'import os, nvidia.nccl as n; print(os.path.dirname(n.__file__) if n.__file__ else list(n.__path__)[0])' 2>/dev/null || true)
echo "torch: $($py -c 'import torch; print(torch.__version__, torch.version.cuda)'); NCCL_ROOT=${nccl_root:-<cuda toolkit>}"

# --- build: the binary only (the GoogleTest suites run in CI, on the CPU)
t0=$(date +%s)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBATCHSCOPE_TESTS=OFF \
  -DCMAKE_PREFIX_PATH="$torch_prefix${prefix_extra:+;$prefix_extra}" ${nccl_root:+-DNCCL_ROOT=$nccl_root} \
  "${cmake_args[@]}" || { echo "SUMMARY: configure failed"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target batchscope || { echo "SUMMARY: build failed"; exit 1; }
bin=$build/batchscope
echo "build: $(( $(date +%s) - t0 )) s"; "$bin" version

failed=0; results=()
result() { results+=("$1: $2"); [ "$2" = PASS ] || failed=$((failed + 1)); }
mpirun_() { mpirun --oversubscribe "$@"; }

work=$build/gpu-tests; rm -rf "$work"; mkdir -p "$work"
# One study body, two run lists: the same data, model, optimizer and budget.
study_yaml() {  # study_yaml NAME RUNS...
  local name=$1; shift
  cat <<YAML
study: $name
output: $work/unused
seed: 11
data: {name: fashion-mnist, root: $carry/fashion-mnist, train_size: 8192, test_size: 2000}
model: {name: mlp, hidden: [256, 128]}
optimizer: {name: sgd, lr: 0.05, ref_batch: 64, scaling: none, momentum: 0.9}
budget: {steps: 100}
eval: {every_steps: 50, train_subset: 1000}
log: {every_steps: 10}
gns: {microbatches: 2}
runs:
YAML
  for r in "$@"; do echo "  - $r"; done
}
study_yaml gpu_eq "{name: one_a, batch: [64]}" "{name: one_b, batch: [256]}" >"$work/eq.yaml"
study_yaml gpu_hetero "{name: hetero, batch: [16, 48]}" >"$work/hetero.yaml"

# 1. two 1-rank groups on NCCL vs the CPU
mpirun_ -np 2 "$bin" run "$work/eq.yaml" --set output="$work/eq-cpu" --set device=cpu --threads 4 &&
  mpirun_ -np 2 "$bin" run "$work/eq.yaml" --set output="$work/eq-nccl" --set device=cuda --set comm=nccl &&
  $py tests/gpu/compare_traces.py "$work/eq-cpu" "$work/eq-nccl" --rtol "$RTOL" &&
  result nccl-1rank-groups PASS || result nccl-1rank-groups FAIL

# 2. a 2-rank heterogeneous group on the one GPU over MPI vs the CPU
mpirun_ -np 2 "$bin" run "$work/hetero.yaml" --set output="$work/het-cpu" --set device=cpu --threads 4 &&
  mpirun_ -np 2 "$bin" run "$work/hetero.yaml" --set output="$work/het-gpu" --set device=cuda --set comm=mpi &&
  $py tests/gpu/compare_traces.py "$work/het-cpu" "$work/het-gpu" --rtol "$RTOL" &&
  result mpi-shared-gpu PASS || result mpi-shared-gpu FAIL

# 3. NCCL asked for where a group shares a GPU: a clear error, exit 2
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "$gpus" -lt 2 ]; then
  mpirun_ -np 2 "$bin" run "$work/hetero.yaml" --set output="$work/refused" --set device=cuda --set comm=nccl \
    >"$work/refused.log" 2>&1
  rc=$?
  grep -q "use comm: mpi" "$work/refused.log" && [ $rc -ne 0 ] && result nccl-refused PASS || {
    cat "$work/refused.log"; result nccl-refused FAIL; }
fi

# 4. a hung NCCL peer ends the job with a message (needs a 2-rank NCCL group)
if [ "$gpus" -ge 2 ]; then
  t=$(date +%s)
  mpirun_ -np 2 "$bin" run "$work/hetero.yaml" --set output="$work/hung" --set device=cuda --set comm=nccl \
    --set comm_timeout_s=20 --set 'budget={steps: 100000}' >"$work/hung.log" 2>&1 &
  job=$!
  sleep 25
  pkill -STOP -f "batchscope run $work/hetero.yaml" -n || true
  wait $job
  el=$(( $(date +%s) - t ))
  pkill -CONT -f "batchscope run $work/hetero.yaml" || true
  pkill -KILL -f "batchscope run $work/hetero.yaml" || true
  grep -q "NCCL: ncclAllReduce" "$work/hung.log" && [ $el -lt 140 ] && result nccl-hung-peer PASS || {
    tail -20 "$work/hung.log"; result nccl-hung-peer FAIL; }
else
  results+=("nccl-hung-peer: SKIPPED (needs 2 GPUs: NCCL refuses two ranks of one communicator on one GPU)")
fi

# 5. your own model: configs/own_model's TorchScript CNN with BatchNorm
# (exported by prepare.sh with Debian's torch 1.13, loaded by this host's
# LibTorch) trains on CUDA on Fashion-MNIST (the carried IDX files: the HDF5
# export would not fit the carry) and follows its CPU run within RTOL.
own=(--set model.path="$carry/own_model/cnn_bn.pt" --set "budget={steps: 60}" --set "eval={every_steps: 30, train_subset: 500}"
  --set "data={name: fashion-mnist, root: $carry/fashion-mnist, train_size: 8192, test_size: 2000}"
  --set "sweep={global_batch: [64], ranks: 1}")
mpirun_ -np 1 "$bin" run configs/own_model/study.yaml "${own[@]}" --set output="$work/own-cpu" --set device=cpu --threads 4 &&
  mpirun_ -np 1 "$bin" run configs/own_model/study.yaml "${own[@]}" --set output="$work/own-gpu" --set device=cuda &&
  $py tests/gpu/compare_traces.py "$work/own-cpu" "$work/own-gpu" --rtol "$RTOL" &&
  result own-model-cuda PASS || result own-model-cuda FAIL

# 6. the benchmark table
$py tests/bench/compare.py --batchscope "$bin" --baseline "$carry/torch_ddp_baseline.py" --python "$py" \
  --data "$carry/fashion-mnist" --device cuda --ranks 1 --out "$out/bench.jsonl" | tee "$out/bench.md"
[ "${PIPESTATUS[0]}" -eq 0 ] && result benchmark PASS || result benchmark FAIL

echo; echo "SUMMARY ($(date -u +%FT%TZ), $(nvidia-smi -L 2>/dev/null | head -1))"
for r in "${results[@]}"; do echo "  $r"; done
cp "$work"/*.log "$out"/ 2>/dev/null || true
echo "failed: $failed"
exit $(( failed > 0 ))
