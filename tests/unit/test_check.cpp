// The C-boundary check macros (util/check.h): a failed call becomes a
// LibraryError naming the call and file:line, and the world rank when a
// launcher set one (util/ sits below MPI, so it reads the launcher's
// environment rather than asking MPI).
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "util/check.h"

namespace bs {
namespace {

const char* const kRankVars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"};

// Clears every launcher variable for the test, restores none: the unit tests
// run outside a launcher.
struct NoLauncher {
  NoLauncher() {
    for (const char* v : kRankVars) unsetenv(v);
  }
  ~NoLauncher() {
    for (const char* v : kRankVars) unsetenv(v);
  }
};

std::string failure_message() {
  try {
    BS_MPI_CHECK(7);
  } catch (const LibraryError& e) {
    return e.what();
  }
  return "";
}

TEST(Check, NamesTheCallAndWhereItFailed) {
  NoLauncher clean;
  const std::string m = failure_message();
  EXPECT_NE(m.find("MPI call failed: 7 (error code 7)"), std::string::npos) << m;
  EXPECT_NE(m.find("test_check.cpp:"), std::string::npos) << m;
  EXPECT_EQ(m.find("world rank"), std::string::npos) << m;
  EXPECT_EQ(detail::launcher_rank_or_minus1(), -1);
}

TEST(Check, NamesTheRankTheLauncherSet) {
  NoLauncher clean;
  setenv("SLURM_PROCID", "5", 1);
  EXPECT_NE(failure_message().find("on world rank 5"), std::string::npos);
  setenv("OMPI_COMM_WORLD_RANK", "3", 1);  // Open MPI's own wins over Slurm's
  EXPECT_EQ(detail::launcher_rank_or_minus1(), 3);
}

TEST(Check, IgnoresAMalformedRank) {
  NoLauncher clean;
  setenv("PMI_RANK", "two", 1);
  EXPECT_EQ(detail::launcher_rank_or_minus1(), -1);
  setenv("PMI_RANK", "-1", 1);
  EXPECT_EQ(detail::launcher_rank_or_minus1(), -1);
}

TEST(Check, HdfFailureIsNegative) {
  EXPECT_EQ(BS_H5_CHECK(0), 0) << "a non-negative result passes through";
  EXPECT_THROW(BS_H5_CHECK(-1), LibraryError);
}

}  // namespace
}  // namespace bs
