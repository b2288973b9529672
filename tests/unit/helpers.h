#pragma once
// Helpers shared by the unit tests (as tests/mpi/mpi_helpers.h is for the MPI
// suite).
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

namespace bs::test {

// A fresh, empty folder for one test, removed with everything in it when the
// test ends. Its name holds the process id and the running test's suite and
// name, so tests running in parallel (ctest -j) never share one.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "bs_test") {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = prefix + "_" + std::to_string(::getpid());
    if (info) name += std::string("_") + info->test_suite_name() + "_" + info->name();
    for (char& ch : name)
      if (ch == '/') ch = '_';  // parameterized tests are named Suite/Name/0
    path_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // The path of `name` inside the folder (not created).
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace bs::test
