#include "train/records.h"

namespace bs {

const char* status_name(RunStatus s) {
  switch (s) {
    case RunStatus::Running:
      return "running";
    case RunStatus::Completed:
      return "completed";
    case RunStatus::Diverged:
      return "diverged";
    case RunStatus::Failed:
      return "failed";
    case RunStatus::Preempted:
      return "preempted";
  }
  return "unknown";
}

}  // namespace bs
