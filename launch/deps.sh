#!/usr/bin/env bash
# Installs the Debian packages batchscope needs, if any is missing. Sourced by
# launch/quickstart.sh and tests/run.sh, so a fresh machine needs nothing else.
#   bs_install_deps [tests]
bs_install_deps() {
  local pkgs=(build-essential cmake pkg-config git
    libtorch-dev libopenmpi-dev openmpi-bin libhdf5-dev libyaml-cpp-dev libcli11-dev libgtest-dev zlib1g-dev
    libopenblas0-openmp
    python3 python3-h5py python3-numpy python3-matplotlib python3-scipy python3-pandas python3-pytest python3-yaml
    dataset-fashion-mnist)
  # libopenblas0-openmp: Debian's libtorch calls the BLAS through libblas.so.3,
  # which is the reference BLAS (about 20x slower on the mlp) until an optimized
  # one registers itself as that alternative. OpenBLAS's OpenMP build, not its
  # pthreads one: it shares LibTorch's OpenMP runtime and obeys its thread count
  # (--threads), where the pthreads build would start a pool of its own.
  # `bs_install_deps tests` (tests/run.sh): also Slurm, for the one-node cluster
  # tests/slurm/run.sh starts itself; mypy for the analysis package; clang-format
  # and clang-tidy for tests/lint (Debian 12's 14: the formatting is pinned to it);
  # PyTorch (1.13) for tests/tools/make_torchscript.py, the TorchScript models
  # the model tests load; unzip and pip for tests/cuda/build.sh (the CUDA
  # LibTorch wheel)
  [ "${1:-}" = tests ] && pkgs+=(slurm-wlm munge python3-mypy clang-format clang-tidy python3-torch unzip python3-pip python3-venv)
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "batchscope: installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Configures and builds into $1 (default: build/).
bs_build() {
  local build=${1:-build}
  cmake -S "$BS_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j "$(nproc)"
}

# mpirun as root (containers, CI) needs both of these; harmless otherwise.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
