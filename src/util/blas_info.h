#pragma once
// Which BLAS this process calls: the shared object that provides `sgemm_`
// (the Fortran BLAS LibTorch's CPU matrix products go through), found at run
// time, so `batchscope version` and the run file name what really ran, not
// what the build linked against. Debian's libtorch links libblas.so.3, which
// the alternatives system points at the reference BLAS (libblas3) unless an
// optimized one such as libopenblas0-openmp is installed: with the reference
// BLAS a 1024-sample mlp step takes about 20x longer.
#include <string>

namespace bs {

struct BlasInfo {
  enum class Kind { None, Reference, OpenBlas, Other };
  Kind kind = Kind::None;
  std::string path;         // the providing object, symbolic links resolved; "" for None
  std::string description;  // e.g. "OpenBLAS 0.3.21 (openmp) /usr/lib/.../openblas-openmp/libblas.so.3"
};

// Pure, for tests: what a provider's resolved path says, with what OpenBLAS's
// openblas_get_config() returned ("" when the provider has none) and
// openblas_get_parallel() (0 sequential, 1 pthreads, 2 openmp; -1 unknown).
// An empty path means no BLAS is loaded.
BlasInfo classify_blas(const std::string& path, const std::string& openblas_config, int openblas_parallel);

// The BLAS this process has loaded (LibTorch's, in batchscope).
BlasInfo loaded_blas();

// The console warning for a slow BLAS, with the fix; "" when the BLAS is not
// the reference one.
std::string blas_warning(const BlasInfo& blas);

}  // namespace bs
