#!/usr/bin/env bash
# Run on the development machine (Debian 12, network) before sending the
# checkout to a GPU host that has no network: fills .gpu-carry/ (git-ignored)
# with what tests/gpu/run.sh needs there and cannot fetch:
#   fashion-mnist/         the four IDX files of Debian's dataset-fashion-mnist
#   torch_ddp_baseline.py  the reference baseline (../shared/baselines/)
#   own_model/cnn_bn.pt    configs/own_model's TorchScript model
#   debs/                  Debian packages of our C/C++ dependencies (MPI, HDF5,
#                          yaml-cpp, CLI11) and of the libraries they load,
#                          unpacked there without installing
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
# Development packages of our C/C++ dependencies, and every package their
# libraries, mpirun and Open MPI's and PMIx's components load, read off ldd
# here, less the C and C++ runtimes every host has (glibc, libgcc, libstdc++).
# run.sh uses a carried library only where the host lacks it.
# apt-get download takes no root and installs nothing.
dev=(libopenmpi-dev openmpi-bin openmpi-common libhdf5-dev libyaml-cpp-dev libcli11-dev zlib1g-dev)
lib=/usr/lib/x86_64-linux-gnu
elfs=("$lib/libmpi.so.40" "$lib/libhdf5_serial.so.103" "$lib/libhdf5_serial_hl.so.100" "$lib/libyaml-cpp.so.0.7"
  "$(readlink -f /usr/bin/mpirun)" "$lib"/openmpi/lib/openmpi3/*.so "$lib"/pmix2/lib/pmix/*.so)
owner() { # the Debian package that holds a library file (merged /usr: try both spellings)
  local r
  r=$(readlink -f "$1")
  { dpkg -S "$r" || dpkg -S "${r#/usr}" || dpkg -S "$1"; } 2>/dev/null | head -1 | cut -d: -f1
}
mapfile -t runtime < <(for e in "${elfs[@]}"; do ldd "$e"; done | awk '/=>/ && $3 ~ /^\// {print $3}' | sort -u |
  cat - <(printf '%s\n' "${elfs[@]}") | while read -r l; do owner "$l"; done |
  grep -v -x -E 'libc6|libgcc-s1|libstdc\+\+6' | sort -u)
(cd "$carry/debs" && apt-get download "${dev[@]}" "${runtime[@]}" >/dev/null)
echo "carried packages: ${#dev[@]} development, ${#runtime[@]} runtime (${runtime[*]})"
du -sh "$carry" "$carry"/*
echo "prepared $carry: pass carry [\".gpu-carry\"] to the device run"
