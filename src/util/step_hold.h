#pragma once
// A testing aid for tests that stop a run with a signal: with
// BATCHSCOPE_HOLD_AT_STEP=K in the environment, a group leader stops at the
// drain that delivers step K (docs: README "Preemption"), says so on the
// console and waits until a stop signal (util/signals.h) arrives; the group's
// other ranks wait in the next reduction meanwhile. A test waits for that
// console line and then signals: the run can neither finish before the signal
// arrives nor outrun it, however fast the machine. Only the drain that
// delivers step K holds, so a run resumed past K does not hold again.
#include <cstdint>
#include <functional>
#include <string>

namespace bs {

class StepHold {
 public:
  static constexpr const char* kVariable = "BATCHSCOPE_HOLD_AT_STEP";
  // K from the environment; no hold when unset or empty. Anything but a whole
  // number >= 1 is a ConfigError.
  static StepHold from_env();
  explicit StepHold(int64_t step = 0) : step_(step) {}  // 0: never holds

  int64_t step() const { return step_; }
  // Whether a drain of the rows first..last (steps) delivers step K.
  bool due(int64_t first, int64_t last) const { return step_ > 0 && first <= step_ && step_ <= last; }
  // The console line that tests wait for.
  std::string message(const std::string& run) const;
  // Sleeps in 20 ms polls until a stop signal has arrived, calling idle()
  // after each poll; returns at once when one already has.
  static void wait_for_stop_signal(const std::function<void()>& idle);

 private:
  int64_t step_;
};

}  // namespace bs
