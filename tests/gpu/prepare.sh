#!/usr/bin/env bash
# Run on the development machine (Debian 12, network) before sending the
# checkout to a GPU host that has no network: fills .gpu-carry/ (git-ignored)
# with what tests/gpu/run.sh needs there and cannot fetch:
#   fashion-mnist/         the four IDX files of Debian's dataset-fashion-mnist
#   torch_ddp_baseline.py  the reference baseline (../shared/baselines/)
#   own_model/cnn_bn.pt    configs/own_model's TorchScript model
#   debs/                  Debian packages of our C/C++ dependencies (MPI, HDF5,
#                          yaml-cpp, CLI11), unpacked there without installing
# Then: device run with carry [".gpu-carry"] and command "bash tests/gpu/run.sh".
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
carry=$root/.gpu-carry
baseline=${BS_BASELINE:-$root/../shared/baselines/torch_ddp_baseline.py}
data=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
rm -rf "$carry"; mkdir -p "$carry/fashion-mnist" "$carry/debs"
cp "$data"/*-ubyte.gz "$carry/fashion-mnist/"
cp "$baseline" "$carry/torch_ddp_baseline.py"
# The example's TorchScript model (Debian's python3-torch); the GPU host's
# LibTorch loads it (TorchScript files load in later versions).
/usr/bin/python3 "$root/configs/own_model/export.py" --out "$carry/own_model" --skip-data >/dev/null
# Runtime and development packages, with the libraries they pull in that a
# CUDA image typically lacks. apt-get download takes no root and installs nothing.
pkgs=(libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libpmix2 libevent-core-2.1-7 libevent-pthreads-2.1-7
  libhwloc15 libhwloc-plugins libfabric1 libucx0 libpsm2-2 libpsm-infinipath1 libibverbs1 librdmacm1 libnl-3-200
  libnl-route-3-200 libxnvctrl0 libmunge2 libnuma1 libltdl7 libcurl3-gnutls
  libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libsz2 libaec0 libaec-dev libyaml-cpp-dev libyaml-cpp0.7 libcli11-dev
  zlib1g-dev)
(cd "$carry/debs" && apt-get download "${pkgs[@]}" >/dev/null)
du -sh "$carry" "$carry"/*
echo "prepared $carry: pass carry [\".gpu-carry\"] to the device run"
