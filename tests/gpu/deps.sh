# Sourced by tests/gpu/run.sh: our C/C++ dependencies on a GPU host with no
# network, from the Debian packages tests/gpu/prepare.sh carried.
#
# HDF5, yaml-cpp and CLI11 always come from the carried packages (unpacked,
# not installed, under /tmp/bsdeps); Open MPI too where the host has none. A
# library the host lacks (libcurl for HDF5, libudev for hwloc, ...) is linked
# from the carried ones into $deps/fallback, which alone goes on
# LD_LIBRARY_PATH: the host's own libraries keep precedence everywhere else.
# The link needs it too: ld looks for the libraries' own dependencies there.
#
#   gpu_deps CARRY   sets deps, cmake_args, prefix_extra, PATH, LD_LIBRARY_PATH
#                    (and Open MPI's variables); returns 1 with the libraries
#                    still missing in deps_unresolved
#   fill_missing ELF...  links what these files need and the host lacks
#   unresolved ELF...    prints what they need and nothing provides

deps=/tmp/bsdeps
deps_lib=$deps/usr/lib/x86_64-linux-gnu

unresolved() { for e in "$@"; do ldd "$e" 2>/dev/null; done | awk '/not found/{print $1}' | sort -u; }

fill_missing() {
  local changed=1 so src
  while [ $changed = 1 ]; do
    changed=0
    for so in $(unresolved "$@"); do
      src=$(find $deps/usr/lib $deps/lib -name "$so" \( -type f -o -type l \) -print -quit 2>/dev/null)
      [ -n "$src" ] && [ ! -e "$deps/fallback/$so" ] && ln -s "$src" "$deps/fallback/$so" && changed=1
    done
  done
}

gpu_deps() {
  local carry=$1 f
  rm -rf $deps
  mkdir -p $deps/fallback
  local host_mpi=0
  command -v mpicc >/dev/null && command -v mpirun >/dev/null && host_mpi=1
  for f in "$carry"/debs/*.deb; do
    # the host's own Open MPI, or none: one libmpi, the one mpirun matches
    [ $host_mpi = 1 ] && [[ $(basename "$f") == @(libopenmpi|openmpi|libpmix)* ]] && continue
    dpkg -x "$f" $deps
  done
  export LD_LIBRARY_PATH=$deps/fallback${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export HWLOC_PLUGINS_PATH=$deps_lib/hwloc
  # No h5cc: Debian's wrapper prints /usr paths, so FindHDF5 searches HDF5_ROOT.
  cmake_args=(-DHDF5_ROOT=$deps_lib/hdf5/serial -DHDF5_NO_FIND_PACKAGE_CONFIG_FILE=ON
    -DHDF5_C_COMPILER_EXECUTABLE=$deps/no-h5cc)
  prefix_extra="$deps/usr;$deps_lib/cmake;$deps/usr/share/cmake"
  if [ $host_mpi = 0 ]; then
    # Debian's Open MPI and PMIx find their components relative to these
    # prefixes; shared memory and TCP only (no verbs, UCX or OFI on one node).
    export OPAL_PREFIX=$deps/usr PMIX_PREFIX=$deps_lib/pmix2 PATH=$deps/usr/bin:$PATH
    export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_mca_base_component_show_load_errors=0
    ln -sf mpirun.openmpi $deps/usr/bin/mpirun
    ln -sf mpicc.openmpi $deps/usr/bin/mpicc
    cmake_args+=(-DMPI_C_COMPILER=$deps/usr/bin/mpicc.openmpi -DMPIEXEC_EXECUTABLE=$deps/usr/bin/mpirun.openmpi)
  fi
  local carried
  mapfile -t carried < <(find $deps_lib -maxdepth 1 -name '*.so.*' -type f
    find $deps_lib/openmpi $deps_lib/pmix2 -name '*.so' -type f 2>/dev/null)
  fill_missing "${carried[@]}" "$(readlink -f "$(command -v mpirun)")"
  echo "Open MPI: $(command -v mpirun); linked from the carried packages: $(ls $deps/fallback | tr '\n' ' ')"
  deps_unresolved=$(unresolved "$(readlink -f "$(command -v mpirun)")" $deps_lib/libhdf5_serial.so.103 \
    $deps_lib/libyaml-cpp.so.0.7 | tr '\n' ' ')
  [ -z "$deps_unresolved" ] || return 1
  mpirun --version | head -1
}
