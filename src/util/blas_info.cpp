#include "util/blas_info.h"

#include <climits>
#include <cstdlib>
#include <sstream>

#include <dlfcn.h>

namespace bs {
namespace {

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

std::string basename_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64" -> "0.3.21".
std::string openblas_version(const std::string& config) {
  std::istringstream in(config);
  std::string name, version;
  in >> name >> version;
  return name == "OpenBLAS" ? version : "";
}

std::string threading(int parallel) {
  switch (parallel) {
    case 0:
      return "sequential";
    case 1:
      return "pthreads";
    case 2:
      return "openmp";
    default:
      return "";
  }
}

BlasInfo openblas(const std::string& path, const std::string& config, int parallel) {
  const std::string version = openblas_version(config);
  const std::string threads = threading(parallel);
  std::string d = "OpenBLAS";
  if (!version.empty()) d += " " + version;
  if (!threads.empty()) d += " (" + threads + ")";
  return {BlasInfo::Kind::OpenBlas, path, d + " " + path};
}

// Names the vendor from the path alone (Debian keeps each BLAS alternative in
// its own folder: blas/, openblas-openmp/, blis-openmp/, atlas/ ...).
BlasInfo by_path(const std::string& path) {
  const struct {
    const char* part;
    const char* name;
  } vendors[] = {{"mkl", "Intel MKL"}, {"blis", "BLIS"}, {"atlas", "ATLAS"}, {"flexiblas", "FlexiBLAS"}};
  for (const auto& v : vendors)
    if (has(path, v.part)) return {BlasInfo::Kind::Other, path, std::string(v.name) + " " + path};
  // A plain libblas.so with no vendor in its path is Netlib's reference BLAS
  // (Debian's /usr/lib/<arch>/blas/, Fedora's /usr/lib64/).
  if (basename_of(path).rfind("libblas.", 0) == 0)
    return {BlasInfo::Kind::Reference, path, "reference BLAS (" + path + ")"};
  return {BlasInfo::Kind::Other, path, "BLAS from " + path};
}

std::string resolved(const char* path) {
  char* real = realpath(path, nullptr);
  if (!real) return path;
  std::string out(real);
  std::free(real);
  return out;
}

// openblas_get_config / openblas_get_parallel of the provider or of what it
// links (Debian's openblas libblas.so.3 is a thin layer over libopenblas.so.0).
BlasInfo ask_provider(const char* loaded_as) {
  std::string config;
  int parallel = -1;
  void* h = dlopen(loaded_as, RTLD_LAZY | RTLD_NOLOAD);
  if (h) {
    using ConfigFn = char* (*)();
    using ParallelFn = int (*)();
    if (auto* f = reinterpret_cast<ConfigFn>(dlsym(h, "openblas_get_config"))) config = f();
    if (auto* f = reinterpret_cast<ParallelFn>(dlsym(h, "openblas_get_parallel"))) parallel = f();
    dlclose(h);
  }
  return classify_blas(resolved(loaded_as), config, parallel);
}

}  // namespace

BlasInfo classify_blas(const std::string& path, const std::string& openblas_config, int openblas_parallel) {
  if (path.empty()) return {BlasInfo::Kind::None, "", "no BLAS loaded"};
  if (!openblas_config.empty() || has(path, "openblas")) return openblas(path, openblas_config, openblas_parallel);
  return by_path(path);
}

BlasInfo loaded_blas() {
  // The global lookup, as LibTorch's own unresolved sgemm_ is bound.
  void* sgemm = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info info{};
  if (!sgemm || dladdr(sgemm, &info) == 0 || !info.dli_fname) return classify_blas("", "", -1);
  return ask_provider(info.dli_fname);
}

std::string blas_warning(const BlasInfo& blas) {
  if (blas.kind != BlasInfo::Kind::Reference) return "";
  return "LibTorch is using the reference BLAS (" + blas.path +
         "), which trains about 20x slower than an optimized one; install OpenBLAS's OpenMP build, which Debian then "
         "uses in its place: sudo apt-get install libopenblas0-openmp";
}

}  // namespace bs
