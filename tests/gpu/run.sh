#!/usr/bin/env bash
# One call on a GPU host: build batchscope against that host's Python
# LibTorch (CUDA) and NCCL, run the GPU checks and the benchmark, print a
# PASS/FAIL summary. The host needs no network: run tests/gpu/prepare.sh on a
# machine with one first and bring .gpu-carry/ along (data, baseline, model,
# Debian packages of our C/C++ dependencies and of what those need).
#
# Checks (each must pass; the exit code is 1 if any failed):
#   build              configure and build; ldd must show libtorch_cuda and
#                      libc10_cuda (an --as-needed link drops them and LibTorch
#                      then sees no GPU) and `version` must see the GPU
#   nccl-1rank-groups  the same study (two 1-rank runs) on the CPU and on the
#                      GPU with NCCL, one group per run. A 1-rank all-reduce
#                      changes nothing, so this cannot catch a stream-ordering
#                      bug; only nccl-hung-peer (2+ GPUs) runs a multi-rank
#                      NCCL group.
#   mpi-shared-gpu     a 2-rank heterogeneous run ([16, 48]) on the CPU and on
#                      the one GPU over MPI (host-staged)
#   nccl-refused       comm: nccl with two ranks of a group on one GPU: exit 2
#                      and a message that says to use comm: mpi (1 GPU only)
#   nccl-hung-peer     (2+ GPUs) a rank stopped with SIGSTOP 25 s in, with
#                      comm_timeout_s 20: the job ends within 140 s, naming the
#                      rank and the NCCL operation
#   own-model-cuda     configs/own_model's TorchScript CNN with BatchNorm on
#                      CUDA vs the CPU
#   sharpness-cuda     eval.sharpness on the GPU vs the CPU: the 2-rank
#                      [16, 48] mlp group (host-staged) and the own model's
#                      TorchScript CNN (1 rank); the step-0 estimate is held
#                      tightly (the same parameters), later ones loosely
#   quickstart-cuda    configs/quickstart.yaml on the GPU (4 ranks, MPI
#                      host-staged) and the analysis summary of its output
#   graphs             gpu.graphs on vs off, every number of the run files
#                      but the clocks bit for bit: 1-rank NCCL groups (one
#                      graph per step), a 2-rank host-staged group (two graphs
#                      around the allreduce), the cnn with Adam; and a run
#                      preempted under graphs resumes to the same bits
#   benchmark          tests/bench/compare.py on the GPU: mlp and cnn at
#                      per-rank batch 32, 128, 1024, 8192, batchscope (graphs
#                      on, and off: --eager) vs the DDP baseline (NCCL)
#   sweep              tests/bench/sweep.py: 8 global batches x 2 seeds, 10
#                      epochs of the mlp on the one GPU, 1-rank groups as
#                      BS_SWEEP_RANKS processes (default 4), against the
#                      baseline's step time summed over the same steps
# GPU vs CPU traces are compared by tests/gpu/compare_traces.py: the first
# step tightly (loss and squared gradient norm), later steps loosely (two
# ways of summing part exponentially; see its docstring), and the GPU run
# file must record the communicator the check is about.
#
# Every mpirun runs under `timeout`, the studies set comm_timeout_s: 60, and
# the summary is printed on any exit, so a hang costs one check, not the run.
# Environment: BS_CARRY (default .gpu-carry), BS_GPU_CHECKS (names of the
# checks to run, default all; build always runs), BS_BENCH_BATCHES, BS_BENCH_MODELS (default mlp,cnn),
# BS_BENCH_ROUNDS (paired rounds per benchmark case, default 1),
# BS_SWEEP_RANKS (default 4), BS_SWEEP_EPOCHS (default 10).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
carry=${BS_CARRY:-$root/.gpu-carry}
out=${OUT:-$root/build-gpu/out}
build=$root/build-gpu
checks=${BS_GPU_CHECKS:-all}
mkdir -p "$out" "$build"
exec > >(tee "$out/gpu-run.log") 2>&1
cd "$root"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PYTHONUNBUFFERED=1
t_start=$(date +%s)
work=$build/gpu-tests

failed=0
results=()
result() {
  results+=("$(printf '%-18s %s' "$1" "$2")")
  [ "${2%% *}" = PASS ] || [ "${2%% *}" = SKIPPED ] || failed=$((failed + 1))
}
summary() {
  echo
  echo "SUMMARY ($(date -u +%FT%TZ), $(($(date +%s) - t_start)) s, $(nvidia-smi -L 2>/dev/null | head -1))"
  for r in "${results[@]}"; do echo "  $r"; done
  # one archive: the device tool brings back at most 8 files
  (cd "$work" 2>/dev/null && tar czf "$out/logs.tgz" ./*.log ./*.txt "$build"/*.log 2>/dev/null) || true
  echo "failed: $failed"
}
trap summary EXIT
trap 'result interrupted "FAIL (signal)"; exit 143' TERM INT
want() { [ "$checks" = all ] || [[ " $checks " == *" $1 "* ]]; }
# tmo SECONDS CMD...: a check that hangs is killed and fails, the rest go on
tmo() { timeout -k 10 "$@"; }

echo "== host"
nvidia-smi -L || true
(. /etc/os-release && echo "$PRETTY_NAME, kernel $(uname -r), $(nproc) cores")
gcc --version | head -1
cmake --version | head -1
[ -d "$carry/fashion-mnist" ] || {
  result carry "FAIL (no $carry/fashion-mnist: run tests/gpu/prepare.sh and carry .gpu-carry)"
  exit 2
}
# A CUDA LibTorch's find_package(Torch) runs FindCUDAToolkit, which needs nvcc.
for d in "${CUDA_HOME:-/usr/local/cuda}/bin" /usr/local/cuda/bin; do
  [ -x "$d/nvcc" ] && export PATH=$d:$PATH && break
done
nvcc --version | tail -1 || {
  result build "FAIL (no nvcc on PATH or in CUDA_HOME/bin)"
  exit 1
}
for t in mpicc mpirun h5cc; do echo "host $t: $(command -v $t || echo none)"; done

# --- dependencies: the carried packages where the host lacks them
source "$root/tests/gpu/deps.sh"
gpu_deps "$carry" || {
  result deps "FAIL (unresolved: $deps_unresolved)"
  exit 1
}

# --- build: the binary only (the GoogleTest suites run in CI, on the CPU) -------
py=$(command -v python3)
torch_prefix=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)')
nccl_root=$($py -c 'import os, nvidia.nccl as n; print(os.path.dirname(n.__file__) if n.__file__ else list(n.__path__)[0])' 2>/dev/null || true)
[ -f "$nccl_root/include/nccl.h" ] || nccl_root=""  # a wheel without the header: the toolkit's NCCL
echo "torch: $($py -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda, "NCCL", torch.cuda.nccl.version())'); NCCL_ROOT=${nccl_root:-<cuda toolkit>}"
t0=$(date +%s)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBATCHSCOPE_TESTS=OFF \
  -DCMAKE_PREFIX_PATH="$torch_prefix;$prefix_extra" ${nccl_root:+-DNCCL_ROOT=$nccl_root} \
  "${cmake_args[@]}" >"$build/configure.log" 2>&1 || {
  tail -40 "$build/configure.log"
  result build "FAIL (configure)"
  exit 1
}
grep -E '^-- (batchscope|Found (MPI|HDF5|CUDAToolkit))' "$build/configure.log"
cmake --build "$build" -j "$(nproc)" --target batchscope >"$build/build.log" 2>&1 || {
  grep -E -B2 -A8 'error|Error' "$build/build.log" | head -80
  result build "FAIL (compile or link)"
  exit 1
}
bin=$build/batchscope
fill_missing "$bin"
echo "build: $(($(date +%s) - t0)) s (configure and $(nproc)-way compile)"
ldd "$bin" | grep -E 'libtorch_cuda|libc10_cuda|nccl|cudart|libmpi|hdf5' | sed 's/^/  /'
"$bin" version
if [ -n "$(unresolved "$bin")" ]; then
  result build "FAIL (unresolved: $(unresolved "$bin" | tr '\n' ' '))"
  exit 1
elif ! ldd "$bin" | grep -q libtorch_cuda || ! ldd "$bin" | grep -q libc10_cuda; then
  result build "FAIL (libtorch_cuda or libc10_cuda not linked: LibTorch would see no GPU)"
  exit 1
elif ! "$bin" version | grep -q 'LibTorch sees [1-9]'; then
  result build "FAIL (LibTorch sees no GPU)"
  exit 1
fi
result build "PASS ($(($(date +%s) - t0)) s)"

rm -rf "$work"
mkdir -p "$work"
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
# One study body, two run lists: the same data, model, optimizer and budget.
study_yaml() { # study_yaml NAME RUNS...
  local name=$1
  shift
  cat <<YAML
study: $name
output: $work/unused
seed: 11
comm_timeout_s: 60
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
tmp_mpirun() { local s=$1; shift; timeout -k 10 "$s" mpirun --oversubscribe "$@"; }
# compare NAME REF OTHER ARGS...: the traces' verdict, its lines kept for the note
compare() {
  local name=$1
  shift
  $py tests/gpu/compare_traces.py "$@" | tee "$work/$name.txt"
  local rc=${PIPESTATUS[0]}
  sed -n 's/.*first [0-9]* step(s) (loss, squared norm) max rel diff \([^ ]*\).*later loss max rel diff \([^ ]*\).*/\1 \2/p' \
    "$work/$name.txt" | sort -g -k2 | tail -1 >"$work/$name.worst"
  return "$rc"
}
verdict() { # verdict NAME: PASS/FAIL with the worst first-step and later differences
  local w
  w=$(cat "$work/$1.worst" 2>/dev/null)
  [ -n "$w" ] && echo "(max rel diff: first steps ${w% *}, later ${w#* })"
}

# 1. two 1-rank groups on NCCL vs the CPU
if want nccl-1rank-groups; then
  if tmp_mpirun 120 -np 2 "$bin" run "$work/eq.yaml" --set output="$work/eq-cpu" --set device=cpu --threads 4 >"$work/eq-cpu.log" 2>&1 &&
    tmp_mpirun 120 -np 2 "$bin" run "$work/eq.yaml" --set output="$work/eq-nccl" --set device=cuda --set comm=nccl >"$work/eq-nccl.log" 2>&1 &&
    compare eq "$work/eq-cpu" "$work/eq-nccl" --rtol-first 1e-5 --rtol 2e-2 --expect-comm nccl; then
    result nccl-1rank-groups "PASS $(verdict eq); 1-rank groups: no check of stream ordering"
  else
    tail -n 5 "$work"/eq-*.log
    result nccl-1rank-groups "FAIL $(verdict eq)"
  fi
fi

# 2. a 2-rank heterogeneous group on the one GPU over MPI vs the CPU
if want mpi-shared-gpu; then
  if tmp_mpirun 120 -np 2 "$bin" run "$work/hetero.yaml" --set output="$work/het-cpu" --set device=cpu --threads 4 >"$work/het-cpu.log" 2>&1 &&
    tmp_mpirun 120 -np 2 "$bin" run "$work/hetero.yaml" --set output="$work/het-gpu" --set device=cuda --set comm=mpi >"$work/het-gpu.log" 2>&1 &&
    compare het "$work/het-cpu" "$work/het-gpu" --rtol-first 1e-5 --rtol 2e-2 --expect-comm mpi-host-staged; then
    result mpi-shared-gpu "PASS $(verdict het)"
  else
    tail -n 5 "$work"/het-*.log
    result mpi-shared-gpu "FAIL $(verdict het)"
  fi
fi

# 3. NCCL asked for where a group shares a GPU: a clear error, exit 2
if want nccl-refused && [ "$gpus" -lt 2 ]; then
  tmp_mpirun 60 -np 2 "$bin" run "$work/hetero.yaml" --set output="$work/refused" --set device=cuda --set comm=nccl \
    >"$work/refused.log" 2>&1
  rc=$?
  if grep -q "use comm: mpi" "$work/refused.log" && [ $rc -eq 2 ]; then
    result nccl-refused "PASS (exit $rc)"
  else
    tail -n 20 "$work/refused.log"
    result nccl-refused "FAIL (exit $rc)"
  fi
fi

# 4. a hung NCCL peer ends the job with a message (needs a 2-rank NCCL group)
if want nccl-hung-peer && [ "$gpus" -ge 2 ]; then
  t=$(date +%s)
  tmp_mpirun 200 -np 2 "$bin" run "$work/hetero.yaml" --set output="$work/hung" --set device=cuda --set comm=nccl \
    --set comm_timeout_s=20 --set 'budget={steps: 100000}' >"$work/hung.log" 2>&1 &
  job=$!
  sleep 25
  pkill -STOP -f "batchscope run $work/hetero.yaml" -n || true
  wait $job
  el=$(($(date +%s) - t))
  pkill -CONT -f "batchscope run $work/hetero.yaml" || true
  pkill -KILL -f "batchscope run $work/hetero.yaml" || true
  if grep -q "NCCL: ncclAllReduce" "$work/hung.log" && [ $el -lt 140 ]; then
    result nccl-hung-peer "PASS (ended after $el s)"
  else
    tail -n 20 "$work/hung.log"
    result nccl-hung-peer "FAIL (after $el s)"
  fi
elif want nccl-hung-peer; then
  result nccl-hung-peer "SKIPPED (needs 2 GPUs: NCCL refuses two ranks of one communicator on one GPU)"
fi

# 5. your own model: configs/own_model's TorchScript CNN with BatchNorm
# (exported by prepare.sh with Debian's torch 1.13, loaded by this host's
# LibTorch) on CUDA vs the CPU, on the carried IDX files, at lr 0.005: at the
# study's 0.05 this BatchNorm CNN amplifies rounding so fast that two CPU runs
# differing only in thread count (1 vs 2) part by 8% in loss by step 34; at
# 0.005 they stay within 7.8e-7 over the first 10 steps and 1.7e-3 to step 60.
# The first 10 steps are held to 5e-4: on an H100 (2026-11-26) they differed
# by up to 8.4e-5, 100x the CPU's thread-count spread, since cuDNN may run
# convolutions in TF32 (LibTorch's allowTF32CuDNN is on by default).
if want own-model-cuda; then
  own=(--set model.path="$carry/own_model/cnn_bn.pt" --set "budget={steps: 60}" --set "eval={every_steps: 30, train_subset: 500}"
    --set "data={name: fashion-mnist, root: $carry/fashion-mnist, train_size: 8192, test_size: 2000}"
    --set "sweep={global_batch: [64], ranks: 1}" --set comm_timeout_s=60 --set optimizer.lr=0.005)
  if tmp_mpirun 150 -np 1 "$bin" run configs/own_model/study.yaml "${own[@]}" --set output="$work/own-cpu" --set device=cpu --threads 8 >"$work/own-cpu.log" 2>&1 &&
    tmp_mpirun 120 -np 1 "$bin" run configs/own_model/study.yaml "${own[@]}" --set output="$work/own-gpu" --set device=cuda >"$work/own-gpu.log" 2>&1 &&
    compare own "$work/own-cpu" "$work/own-gpu" --first-steps 10 --rtol-first 5e-4 --rtol 2e-2; then
    result own-model-cuda "PASS $(verdict own)"
  else
    tail -n 5 "$work"/own-*.log
    result own-model-cuda "FAIL $(verdict own)"
  fi
fi

# 5b. sharpness on the GPU: the double-backward Hessian-vector products of the
# mlp (a 2-rank group staged through host memory, each rank's shard summed)
# and of the TorchScript BatchNorm CNN, against the CPU. A fixed number of
# products (tolerance 0) so both sides stop alike; step 0 has the same
# parameters on both, so only rounding parts them (1e-4; the CNN 1e-3, as
# cuDNN may use TF32), later evaluations follow the parted runs (5e-2).
if want sharpness-cuda; then
  sh=(--set 'eval={every_steps: 50, train_subset: 1000, sharpness: {every: 1, iterations: 30, samples: 256, tolerance: 0, at_start: true}}')
  sh_own=(--set model.path="$carry/own_model/cnn_bn.pt" --set "budget={steps: 40}" --set optimizer.lr=0.005
    --set "data={name: fashion-mnist, root: $carry/fashion-mnist, train_size: 8192, test_size: 2000}" --set comm_timeout_s=60
    --set "sweep={global_batch: [64], ranks: 1}" --set 'eval={every_steps: 20, train_subset: 500, sharpness: {every: 1, iterations: 30, samples: 128, tolerance: 0, at_start: true}}')
  if tmp_mpirun 150 -np 2 "$bin" run "$work/hetero.yaml" "${sh[@]}" --set output="$work/sh-cpu" --set device=cpu --threads 4 >"$work/sh-cpu.log" 2>&1 &&
    tmp_mpirun 120 -np 2 "$bin" run "$work/hetero.yaml" "${sh[@]}" --set output="$work/sh-gpu" --set device=cuda --set comm=mpi >"$work/sh-gpu.log" 2>&1 &&
    $py tests/gpu/compare_traces.py "$work/sh-cpu" "$work/sh-gpu" --rtol-first 1e-5 --rtol 2e-2 --sharpness-rtol-first 1e-4 --sharpness-rtol 5e-2 | tee "$work/sh.txt" &&
    tmp_mpirun 150 -np 1 "$bin" run configs/own_model/study.yaml "${sh_own[@]}" --set output="$work/sho-cpu" --set device=cpu --threads 8 >"$work/sho-cpu.log" 2>&1 &&
    tmp_mpirun 120 -np 1 "$bin" run configs/own_model/study.yaml "${sh_own[@]}" --set output="$work/sho-gpu" --set device=cuda >"$work/sho-gpu.log" 2>&1 &&
    $py tests/gpu/compare_traces.py "$work/sho-cpu" "$work/sho-gpu" --first-steps 10 --rtol-first 5e-4 --rtol 2e-2 --sharpness-rtol-first 1e-3 --sharpness-rtol 5e-2 | tee "$work/sho.txt"; then
    result sharpness-cuda "PASS ($(grep -ho 'step 0: .*rel diff [^ ]*' "$work/sh.txt" "$work/sho.txt" | head -2 | tr '\n' ';'))"
  else
    tail -n 5 "$work"/sh*.log "$work"/sh*.txt 2>/dev/null
    result sharpness-cuda FAIL
  fi
fi

# 6. the quickstart study on the GPU (its own config, trimmed to a quarter epoch
# and one base lr: the 3 runs measured on the H100)
if want quickstart-cuda; then
  qs=$work/quickstart
  if tmp_mpirun 180 -np 4 "$bin" run configs/quickstart.yaml --set output="$qs" --set device=cuda \
    --set "data.root=$carry/fashion-mnist" --set "budget={epochs: 0.25}" --set "eval.every_epochs=0.125" --set "sweep.lr=[0.05]" \
    >"$work/quickstart.log" 2>&1 &&
    PYTHONPATH=$root/analysis tmo 120 $py -m batchscope_analysis summary "$qs" >"$work/quickstart-summary.log" 2>&1; then
    tail -8 "$work/quickstart-summary.log"
    result quickstart-cuda "PASS ($(ls "$qs"/runs/*.h5 | wc -l) runs)"
  else
    tail -n 15 "$work"/quickstart*.log
    result quickstart-cuda FAIL
  fi
fi

# 7. CUDA graphs: replayed steps record exactly what eager steps do (every
# number but the clocks, bit for bit): one graph per step (1-rank NCCL groups,
# 2 micro-batches), two around a host-staged allreduce (a 2-rank group on the
# one GPU), Adam; and a run preempted under graphs (SIGUSR1 at a held step 40)
# resumes to the uninterrupted trace. The cnn cannot be held to bits: its
# eager steps are not reproducible themselves (cuDNN's convolution backward
# may sum in any order). On an H100 (2026-11-26, cnn + Adam, 100 steps), two
# eager runs differed by 3.5e-6 over the first 5 steps and 3.1e-2 by step 93;
# graphs against eager by 3.4e-6 and 3.7e-2. So the cnn pair is held to
# 1e-4 over its first 5 steps and 0.2 later (a wrong step, such as a stale
# learning rate or batch, differs by far more from step 2, the first replay).
graph_pair() { # graph_pair NAME NP YAML COMPARE-ARGS -- RUN-ARGS...: graphs off, then on, compared
  local name=$1 np=$2 yaml=$3 mode cmp=()
  shift 3
  while [ "$1" != -- ]; do cmp+=("$1"); shift; done
  shift
  for mode in off on; do
    tmp_mpirun 120 -np "$np" "$bin" run "$yaml" --set output="$work/g-$name-$mode" --set device=cuda \
      --set gpu.graphs=$mode "$@" >"$work/g-$name-$mode.log" 2>&1 || { tail -n 8 "$work/g-$name-$mode.log"; return 1; }
  done
  grep -q 'CUDA graphs: on' "$work/g-$name-on.log" || { echo "g-$name-on.log: no 'CUDA graphs: on'"; return 1; }
  $py tests/gpu/compare_traces.py "$work/g-$name-off" "$work/g-$name-on" "${cmp[@]}" | tee "$work/g-$name.txt"
  return "${PIPESTATUS[0]}"
}
graph_resume() { # under graphs: held at step 40, SIGUSR1, --resume; against g-eq-on
  local args=("$bin" run "$work/eq.yaml" --set output="$work/g-resume" --set device=cuda --set gpu.graphs=on)
  BATCHSCOPE_HOLD_AT_STEP=40 timeout -k 10 120 mpirun --oversubscribe -np 1 "${args[@]}" >"$work/g-resume-1.log" 2>&1 &
  local job=$! rc
  for _ in $(seq 500); do
    grep -qs "holding at step 40" "$work/g-resume-1.log" && break
    kill -0 $job 2>/dev/null || break
    sleep 0.2
  done
  pkill -USR1 -P $job mpirun  # timeout's child: mpirun forwards it to the ranks
  wait $job
  rc=$?
  [ $rc -eq 75 ] || { echo "held run: exit $rc, expected 75"; tail -n 8 "$work/g-resume-1.log"; return 1; }
  tmp_mpirun 120 -np 1 "${args[@]}" --resume >"$work/g-resume-2.log" 2>&1 || { tail -n 8 "$work/g-resume-2.log"; return 1; }
  $py tests/gpu/compare_traces.py "$work/g-eq-on" "$work/g-resume" --exact | tee "$work/g-resume.txt"
  return "${PIPESTATUS[0]}"
}
if want graphs; then
  g_fail=()
  graph_pair eq 2 "$work/eq.yaml" --exact -- || g_fail+=(nccl-1rank)
  graph_pair het 2 "$work/hetero.yaml" --exact -- --set comm=mpi || g_fail+=(host-staged-2rank)
  graph_pair adam 1 "$work/eq.yaml" --exact -- --set 'optimizer={name: adam, lr: 0.001, weight_decay: 0.01}' \
    --set 'runs=[{name: adam, batch: [64]}]' || g_fail+=(adam)
  graph_pair cnn 1 "$work/eq.yaml" --first-steps 5 --rtol-first 1e-4 --rtol 0.2 -- --set 'model={name: cnn}' \
    --set 'optimizer={name: adam, lr: 0.001}' --set 'runs=[{name: cnn, batch: [64]}]' || g_fail+=(cnn-adam)
  graph_resume || g_fail+=(resume)
  n_ok=$(cat "$work"/g-*.txt 2>/dev/null | grep -c 'identical: OK$')
  if [ ${#g_fail[@]} -eq 0 ]; then
    result graphs "PASS ($n_ok run files identical to eager, every number but the clocks; resume exact; cnn: $(sed -n 's/.*first 5 step(s) (loss, squared norm) max rel diff \([^ ]*\).*later loss max rel diff \([^ ]*\).*/\1 (first 5 steps), \2 (later)/p' "$work/g-cnn.txt"))"
  else
    result graphs "FAIL (${g_fail[*]}; $n_ok run files identical)"
  fi
fi

# 8. the benchmark table
if want benchmark; then
  tmo $((170 * ${BS_BENCH_ROUNDS:-1} + 60)) $py tests/bench/compare.py --batchscope "$bin" --baseline "$carry/torch_ddp_baseline.py" --python "$py" \
    --data "$carry/fashion-mnist" --device cuda --ranks 1 --batches "${BS_BENCH_BATCHES:-32,128,1024,8192}" --models "${BS_BENCH_MODELS:-mlp,cnn}" \
    --rounds "${BS_BENCH_ROUNDS:-1}" --eager --timeout 60 --out "$out/bench.jsonl" | tee "$out/bench.md"
  [ "${PIPESTATUS[0]}" -eq 0 ] && result benchmark PASS || result benchmark FAIL
fi

# 9. the sweep benchmark
if want sweep; then
  tmo 400 $py tests/bench/sweep.py --batchscope "$bin" --baseline "$carry/torch_ddp_baseline.py" --python "$py" \
    --data "$carry/fashion-mnist" --device cuda --ranks "${BS_SWEEP_RANKS:-4}" --epochs "${BS_SWEEP_EPOCHS:-10}" \
    --timeout 300 --out "$out/sweep.json" --keep "$work/sweep" | tee "$out/sweep.md"
  [ "${PIPESTATUS[0]}" -eq 0 ] && result sweep PASS || result sweep FAIL
fi
exit $((failed > 0))
