// Which BLAS the process calls (util/blas_info.h): the classification of a
// provider's path and OpenBLAS's own answers, the warning for the reference
// BLAS, and the live probe (this test links no LibTorch, so it loads
// libblas.so.3 itself).
#include <string>

#include <dlfcn.h>
#include <gtest/gtest.h>

#include "util/blas_info.h"

namespace bs {
namespace {

const char* const kOpenBlas = "/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3";
const char* const kReference = "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3";
const char* const kConfig = "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64";

TEST(BlasInfo, OpenBlasNamesVersionThreadingAndPath) {
  BlasInfo b = classify_blas(kOpenBlas, kConfig, 2);
  EXPECT_EQ(b.kind, BlasInfo::Kind::OpenBlas);
  EXPECT_EQ(b.path, kOpenBlas);
  EXPECT_EQ(b.description, std::string("OpenBLAS 0.3.21 (openmp) ") + kOpenBlas);
  EXPECT_EQ(classify_blas("/opt/ob/libopenblas.so.0", kConfig, 1).description,
            "OpenBLAS 0.3.21 (pthreads) /opt/ob/libopenblas.so.0");
  EXPECT_EQ(classify_blas("/opt/ob/libopenblas.so.0", kConfig, 0).description,
            "OpenBLAS 0.3.21 (sequential) /opt/ob/libopenblas.so.0");
  EXPECT_TRUE(blas_warning(b).empty());
}

TEST(BlasInfo, OpenBlasWithoutItsConfigIsNamedByPath) {
  BlasInfo b = classify_blas("/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3", "", -1);
  EXPECT_EQ(b.kind, BlasInfo::Kind::OpenBlas);
  EXPECT_EQ(b.description, "OpenBLAS /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3");
}

TEST(BlasInfo, ConfigAloneMeansOpenBlas) {
  // A vendor's renamed build still answers openblas_get_config.
  EXPECT_EQ(classify_blas("/opt/vendor/libblas.so.3", kConfig, 2).kind, BlasInfo::Kind::OpenBlas);
}

TEST(BlasInfo, ReferenceBlasIsRecognizedAndWarnedAbout) {
  BlasInfo b = classify_blas(kReference, "", -1);
  EXPECT_EQ(b.kind, BlasInfo::Kind::Reference);
  EXPECT_EQ(b.description, std::string("reference BLAS (") + kReference + ")");
  const std::string w = blas_warning(b);
  EXPECT_NE(w.find(kReference), std::string::npos) << w;
  EXPECT_NE(w.find("sudo apt-get install libopenblas0-openmp"), std::string::npos) << w;
  EXPECT_EQ(classify_blas("/usr/lib64/libblas.so.3.9.0", "", -1).kind, BlasInfo::Kind::Reference);
}

TEST(BlasInfo, OtherVendorsAreNamedNotWarnedAbout) {
  EXPECT_EQ(classify_blas("/usr/lib/x86_64-linux-gnu/blis-openmp/libblas.so.3", "", -1).description,
            "BLIS /usr/lib/x86_64-linux-gnu/blis-openmp/libblas.so.3");
  EXPECT_EQ(classify_blas("/opt/intel/mkl/lib/libmkl_rt.so.2", "", -1).description,
            "Intel MKL /opt/intel/mkl/lib/libmkl_rt.so.2");
  EXPECT_EQ(classify_blas("/usr/lib/x86_64-linux-gnu/atlas/libblas.so.3", "", -1).kind, BlasInfo::Kind::Other);
  BlasInfo odd = classify_blas("/opt/x/libfastmath.so", "", -1);
  EXPECT_EQ(odd.kind, BlasInfo::Kind::Other);
  EXPECT_EQ(odd.description, "BLAS from /opt/x/libfastmath.so");
  EXPECT_TRUE(blas_warning(odd).empty());
}

TEST(BlasInfo, NoPathMeansNoBlas) {
  BlasInfo b = classify_blas("", "", -1);
  EXPECT_EQ(b.kind, BlasInfo::Kind::None);
  EXPECT_EQ(b.description, "no BLAS loaded");
  EXPECT_TRUE(blas_warning(b).empty());
}

TEST(BlasInfo, ProbeFindsTheLoadedLibrary) {
  // Nothing in this binary provides sgemm_ until libblas.so.3 is loaded.
  if (dlsym(RTLD_DEFAULT, "sgemm_") == nullptr) EXPECT_EQ(loaded_blas().kind, BlasInfo::Kind::None);
  void* h = dlopen("libblas.so.3", RTLD_NOW | RTLD_GLOBAL);
  if (!h) GTEST_SKIP() << "libblas.so.3 is not installed";
  BlasInfo b = loaded_blas();
  EXPECT_NE(b.kind, BlasInfo::Kind::None);
  EXPECT_EQ(b.path.front(), '/') << b.path;
  EXPECT_NE(b.description.find(b.path), std::string::npos) << b.description;
}

}  // namespace
}  // namespace bs
