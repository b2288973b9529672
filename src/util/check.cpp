#include "util/check.h"

#include <cstdlib>

namespace bs::detail {

int launcher_rank_or_minus1() {
  for (const char* var : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"}) {
    const char* v = std::getenv(var);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    const long r = std::strtol(v, &end, 10);
    if (*end == '\0' && r >= 0) return static_cast<int>(r);
  }
  return -1;
}

void throw_library_error(const char* lib, const char* call, const std::string& detail, const char* file, int line) {
  std::string msg = std::string(lib) + " call failed: " + call + (detail.empty() ? "" : " (" + detail + ")") + " at " +
                    file + ":" + std::to_string(line);
  const int r = launcher_rank_or_minus1();
  if (r >= 0) msg += " on world rank " + std::to_string(r);
  throw LibraryError(msg);
}

}  // namespace bs::detail
