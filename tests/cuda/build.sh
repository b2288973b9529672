#!/usr/bin/env bash
# Build batchscope (targets batchscope and test_mpi) against the LibTorch
# inside PyPI's torch==2.11.0 wheel (CUDA 13.0), the CUDA 13.0 toolkit and the
# NCCL installed on this machine, into build-cuda/ (git-ignored by build-*/).
#
# Why: CI builds against Debian's LibTorch 1.13, a CPU build, so nothing there
# compiles src/ against a LibTorch 2.x with CUDA, which is what GPU hosts run.
# This script does, on a machine with no GPU and no Python torch: it needs only
# pip (to download wheels), unzip, cmake and the Debian build dependencies.
#
#   tests/cuda/build.sh            download (once), extract (once), configure, build,
#                                  print versions, then run what can run without a GPU
#
# Environment:
#   BS_WHEEL_CACHE  where wheels are downloaded and extracted, so a machine
#                   downloads once (default ~/.cache/batchscope/wheels; ~750 MB
#                   of wheels, ~1.3 GB extracted)
#   CUDA_HOME       the CUDA toolkit (default /usr/local/cuda); NCCL is looked
#                   for there too unless NCCL_ROOT is set (CMakeLists.txt)
#   BS_JOBS         parallel compile jobs (default: nproc)
#   BS_SKIP_RUN=1   build and print versions only
#
# Exit status: 0 built (and, unless BS_SKIP_RUN, ran and passed); 1 a step
# failed; 3 built, but the binaries cannot load here (the reason is printed).
#
# What it runs when the binary can load without a GPU (device: auto then picks
# the CPU): `batchscope version`, a 20-step quickstart study on 2 ranks, and
# test_mpi on 2 ranks with the TorchScript fixtures.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build-cuda
cache=${BS_WHEEL_CACHE:-$HOME/.cache/batchscope/wheels}
cuda_home=${CUDA_HOME:-/usr/local/cuda}
jobs=${BS_JOBS:-$(nproc)}
TIMEFORMAT='  (%R s wall)'

# The pins. torch's own (cusparselt, nvshmem) are in its METADATA; cufile is
# pinned by the cuda-toolkit==13.0.2 it requires (the cufile extra). They are
# checked against the wheel's METADATA below, so bumping torch here fails
# loudly until the others follow.
torch_version=2.11.0
torch_cuda=13.0
# Only the wheels whose libraries the installed toolkit lacks: libtorch_cuda.so
# needs libcufile.so.0 and libcusparseLt.so.0 and, through libtorch_nvshmem.so,
# libnvshmem_host.so.3. The rest it needs (cudart, cublas, cufft, curand,
# cusolver, cusparse, cupti, nvrtc, cudnn 9, nccl 2) come from $CUDA_HOME,
# found through ld.so.conf (or LD_LIBRARY_PATH). We don't download
# nvidia-cudnn-cu13 or nvidia-nccl-cu13: that would mean two copies of
# cudnn/nccl (~1 GB) and a second libnccl.so.2 besides the one batchscope
# links itself.
extra_wheels=(nvidia-cufile==1.15.1.6 nvidia-cusparselt-cu13==0.8.0 nvidia-nvshmem-cu13==3.4.5)

die() {
  echo "tests/cuda/build.sh: $*" >&2
  exit 1
}
for tool in cmake unzip python3 ldd; do
  command -v $tool >/dev/null || die "needs $tool"
done
[ -x "$cuda_home/bin/nvcc" ] || die "no CUDA toolkit at $cuda_home (set CUDA_HOME)"

# --- download, once per machine --------------------------------------------
# pip download with --no-deps: torch's declared dependencies (triton,
# cuda-bindings, the full cuda-toolkit wheels, ...) are for Python, and the
# toolkit is here already. The wheel's C++ libraries are the same for every
# cpXY tag, so any torch-2.11.0 wheel already in the cache is used.
mkdir -p "$cache"
shopt -s nullglob
pip_download() {
  # the first python3 with pip (Debian's /usr/bin/python3 has it through python3-pip)
  local py
  for py in python3 /usr/bin/python3 ''; do
    [ -n "$py" ] || die "needs pip (python3 -m pip, Debian: python3-pip) to download $*"
    "$py" -m pip --version >/dev/null 2>&1 && break
  done
  "$py" -m pip download --no-deps --quiet --dest "$cache" "$@"
}
echo "== download (cache: $cache)"
time {
  wheels=("$cache/torch-$torch_version-"*-manylinux*_x86_64.whl)
  if [ ${#wheels[@]} -eq 0 ]; then
    # Pinned to the cp311 manylinux_2_28 file so every machine caches the same
    # one, whatever python3 runs pip.
    pip_download --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp \
      "torch==$torch_version"
    wheels=("$cache/torch-$torch_version-"*-manylinux*_x86_64.whl)
  fi
  wheel=${wheels[0]}
  need=()
  for spec in "${extra_wheels[@]}"; do
    name=${spec%%==*} ver=${spec#*==}
    found=("$cache/${name//-/_}-$ver-"*.whl)
    [ ${#found[@]} -gt 0 ] || need+=("$spec")
  done
  if [ ${#need[@]} -gt 0 ]; then
    pip_download "${need[@]}"
  fi
}
echo "  $(basename "$wheel")"

# --- extract, once per wheel set -------------------------------------------
# Into a site-packages-like tree: site/torch/{lib,include,share} and
# site/nvidia/{cu13,cusparselt,nvshmem}/lib. Why that layout: the wheel's
# libraries carry RPATH $ORIGIN/../../nvidia/<pkg>/lib, so with the nvidia
# wheels beside torch/ they find each other, at link time (ld follows DT_RPATH
# for the libraries' own dependencies) and at run time, with no -rpath-link
# and no LD_LIBRARY_PATH. Only torch's C++ parts are unzipped (not its ~400 MB
# of Python), into a temporary folder renamed when complete, so an interrupted
# extraction is redone rather than used.
site=$cache/site-torch-$torch_version
echo "== extract ($site)"
time {
  if [ ! -f "$site/.complete" ]; then
    rm -rf "$site" "$site.tmp"
    mkdir -p "$site.tmp"
    unzip -q "$wheel" 'torch/lib/*' 'torch/include/*' 'torch/share/*' 'torch/version.py' \
      "torch-$torch_version.dist-info/METADATA" -d "$site.tmp"
    for spec in "${extra_wheels[@]}"; do
      name=${spec%%==*} ver=${spec#*==}
      unzip -q -o "$cache/${name//-/_}-$ver-"*.whl 'nvidia/*' -d "$site.tmp"
    done
    touch "$site.tmp/.complete"
    mv "$site.tmp" "$site"
  fi
}
meta=$site/torch-$torch_version.dist-info/METADATA
for pin in nvidia-cusparselt-cu13==0.8.0 nvidia-nvshmem-cu13==3.4.5 "cuda-toolkit\[.*\]==13.0.2"; do
  grep -q "^Requires-Dist: $pin" "$meta" || die "torch $torch_version's METADATA no longer pins $pin: update extra_wheels"
done
grep -q "^cuda: Optional\[str\] = '$torch_cuda'" "$site/torch/version.py" || die "the torch wheel is not CUDA $torch_cuda"
# Every library in the wheel must resolve, for the link (ld checks the
# libraries' own dependencies) and to run: a "not found" is a wheel missing
# from extra_wheels or a library missing from the toolkit. The toolkit's
# libraries resolve through ld.so.conf where its installer registered them,
# else through LD_LIBRARY_PATH=$CUDA_HOME/lib64, set here then.
# libcuda.so.1 is the driver, present only with a GPU, and needed only by
# libcaffe2_nvrtc.so, which torch dlopens on first use of NVRTC.
wheel_unresolved() {
  for so in "$site"/torch/lib/*.so; do ldd "$so" | grep 'not found' || true; done | { grep -v 'libcuda\.so\.1' || true; } | sort -u
}
if [ -n "$(wheel_unresolved)" ]; then
  export LD_LIBRARY_PATH=$cuda_home/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "  LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
fi
missing=$(wheel_unresolved)
[ -z "$missing" ] || die "libraries of the wheel that do not resolve:
$missing"

# --- configure ---------------------------------------------------------------
# CMAKE_PREFIX_PATH=site/torch/share/cmake is torch.utils.cmake_prefix_path.
# TorchConfig (Caffe2's public/cuda.cmake) finds the toolkit itself
# (CUDAToolkit_ROOT, and CUDA_TOOLKIT_ROOT_DIR for its FindCUDA).
# TORCH_LIBRARY, c10_LIBRARY: TorchConfig looks for libtorch.so and libc10.so
# with find_library(... PATHS <wheel>/lib), which searches the system folders
# first, so on a machine with Debian's libtorch-dev it picks up
# /usr/lib/x86_64-linux-gnu/libc10.so (1.13) and puts it on the link line
# beside the wheel's. Naming them here keeps the link to the wheel only.
# TORCH_CUDA_ARCH_LIST only names what nvcc would build for (batchscope has no
# .cu files); without it TorchConfig compiles and runs a GPU probe.
# Configure warnings that remain, harmless: "pytorch is not compatible with
# CMAKE_CUDA_ARCHITECTURES" (TorchConfig's own enable_language(CUDA) defines
# it), "library kineto not found" (kineto is inside libtorch_cpu.so).
# BATCHSCOPE_TESTS=ON: test_mpi is one of the GoogleTest targets.
#
# The one link flag, CMAKE_EXE_LINKER_FLAGS: libstdc++.so.6 as the first
# NEEDED library of every executable. Why: the wheel's libtorch.so and
# libtorch_cpu.so export copies of libstdc++ functions (std::filesystem among
# them) linked in from the newer GCC 13 it was built with (pytorch/pytorch
# #133437). The dynamic linker binds a symbol to the first library in load
# order that defines it, and libtorch comes before libstdc++, so our own
# std::filesystem calls land in libtorch's copies. Some of those call GCC 13
# internals that Debian 12's libstdc++ (GCC 12) lacks, left as null weak
# symbols: std::filesystem::remove_all segfaults (tests/unit/helpers.h's
# TempDir does in test_torchscript). With libstdc++ first, every libstdc++
# symbol binds to the system's. Harmless where libstdc++ is new enough.
echo "== configure ($build)"
mkdir -p "$build"
time cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBATCHSCOPE_TESTS=ON -DBATCHSCOPE_CUDA=ON \
  -DCMAKE_PREFIX_PATH="$site/torch/share/cmake" \
  -DTORCH_LIBRARY="$site/torch/lib/libtorch.so" -Dc10_LIBRARY="$site/torch/lib/libc10.so" \
  -DCUDAToolkit_ROOT="$cuda_home" -DCUDA_TOOLKIT_ROOT_DIR="$cuda_home" \
  -DTORCH_CUDA_ARCH_LIST="8.0;9.0" \
  -DCMAKE_EXE_LINKER_FLAGS="-Wl,--push-state,--no-as-needed -lstdc++ -Wl,--pop-state" >"$build/configure.log" 2>&1 ||
  {
    cat "$build/configure.log"
    die "configure failed"
  }
grep -E '^-- (batchscope:|Found CUDAToolkit|PyTorch: CUDA detected)' "$build/configure.log" | sed 's/^/  /' || true
# Any LibTorch library outside the wheel (a stale cache from another LibTorch,
# a find_library that went to the system) would mix two LibTorch versions.
stray=$(grep -E '^[A-Za-z0-9_]+_LIBRARY:FILEPATH=.*lib(torch|c10)[a-z_]*\.so' "$build/CMakeCache.txt" | grep -v "=$site/" || true)
[ -z "$stray" ] || die "LibTorch libraries from outside the wheel in $build/CMakeCache.txt (remove $build?):
$stray"

# --- build -------------------------------------------------------------------
echo "== build: batchscope test_mpi (-j$jobs)"
time cmake --build "$build" --target batchscope test_mpi -j"$jobs"

# --- what was linked -------------------------------------------------------
cache_var() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
nccl_inc=$(cache_var NCCL_INCLUDE_DIR)
nccl_ver=$(awk '/#define NCCL_(MAJOR|MINOR|PATCH) /{v=v (v ? "." : "") $3} END{print v}' "$nccl_inc/nccl.h")
echo "== versions"
echo "  LibTorch  $(sed -n "s/^__version__ = '\(.*\)'/\1/p" "$site/torch/version.py") ($site/torch)"
echo "  CUDA      toolkit $(sed -n 's/^-- batchscope: CUDA ON (\([^)]*\)).*/\1/p' "$build/configure.log") ($cuda_home), wheel built for $torch_cuda"
echo "  NCCL      $nccl_ver ($(cache_var NCCL_LIBRARY))"
echo "== ldd build-cuda/batchscope"
ldd "$build/batchscope" | grep -E 'libtorch_cuda|libc10\.|libnccl|libcudart|not found' | sed 's/^\s*/  /'

# --- run, when it can --------------------------------------------------------
# No GPU is needed to load the binary: libcuda.so.1 (the driver) is opened by
# the CUDA runtime when first called, and without it torch::cuda reports no
# device, so device: auto trains on the CPU. Libraries resolve as checked
# after the extraction (the wheel's RPATH, ld.so.conf or LD_LIBRARY_PATH).
[ "${BS_SKIP_RUN:-0}" = 1 ] && exit 0
missing=$(ldd "$build/batchscope" "$build/tests/test_mpi" | grep 'not found' | sort -u || true)
if [ -n "$missing" ]; then
  echo "== not run: these libraries of the binaries do not resolve here:"
  echo "$missing"
  exit 3
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
echo "== batchscope version"
"$build/batchscope" version
echo "== smoke study: quickstart, 20 steps, 2 ranks (CPU without a GPU)"
# A fresh output folder: batchscope refuses to start over run files it finds.
rm -rf /tmp/cuda-smoke
time mpirun -np 2 --oversubscribe "$build/batchscope" run "$root/configs/quickstart.yaml" \
  --set 'budget={steps: 20}' --set data.train_size=2048 --set eval.train_subset=100 \
  --set output=/tmp/cuda-smoke --threads 1
# The TorchScript fixtures come from Debian's python3 (torch 1.13), as in
# ctest: files saved by an older torch must load in LibTorch 2.11.
echo "== test_mpi, 2 ranks"
ts=$build/torchscript
[ -f "$ts/.complete" ] || { /usr/bin/python3 "$root/tests/tools/make_torchscript.py" --out "$ts" && touch "$ts/.complete"; }
time BS_TORCHSCRIPT_DIR=$ts mpirun -np 2 --oversubscribe "$build/tests/test_mpi"
echo "== tests/cuda/build.sh: OK"
