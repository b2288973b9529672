#include "util/step_hold.h"

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "util/errors.h"
#include "util/signals.h"

namespace bs {

StepHold StepHold::from_env() {
  const char* v = std::getenv(kVariable);
  if (!v || !*v) return StepHold();
  char* end = nullptr;
  const long long k = std::strtoll(v, &end, 10);
  if (!std::isdigit(static_cast<unsigned char>(v[0])) || *end != '\0' || k < 1)
    throw ConfigError(std::string("environment variable ") + kVariable, "",
                      "expected a step number >= 1 (or unset), got '" + std::string(v) + "'");
  return StepHold(k);
}

std::string StepHold::message(const std::string& run) const {
  return "[" + run + "] holding at step " + std::to_string(step_) + " until a stop signal (" + kVariable + ")";
}

void StepHold::wait_for_stop_signal(const std::function<void()>& idle) {
  while (stop_signal() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    idle();
  }
}

}  // namespace bs
