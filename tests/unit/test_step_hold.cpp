// BATCHSCOPE_HOLD_AT_STEP (util/step_hold.h): the variable is read strictly,
// the hold is due only at the drain that delivers step K, and the wait ends
// with a stop signal.
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include "util/errors.h"
#include "util/signals.h"
#include "util/step_hold.h"

namespace bs {
namespace {

// Sets (or, with null, unsets) the variable for one test.
struct HoldVar {
  explicit HoldVar(const char* v) {
    if (v)
      setenv(StepHold::kVariable, v, 1);
    else
      unsetenv(StepHold::kVariable);
  }
  ~HoldVar() { unsetenv(StepHold::kVariable); }
};

int64_t step_from(const char* v) {
  HoldVar var(v);
  return StepHold::from_env().step();
}

TEST(StepHold, ReadsTheVariable) {
  EXPECT_EQ(step_from(nullptr), 0);
  EXPECT_EQ(step_from(""), 0);
  EXPECT_EQ(step_from("1"), 1);
  EXPECT_EQ(step_from("250"), 250);
}

TEST(StepHold, RefusesAnythingButAStepNumber) {
  for (const char* bad : {"0", "-3", "12x", "x", " 5", "1.5"}) {
    HoldVar var(bad);
    try {
      StepHold::from_env();
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("BATCHSCOPE_HOLD_AT_STEP"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(StepHold, DueOnlyAtTheDrainThatDeliversStepK) {
  StepHold h(40);
  EXPECT_FALSE(h.due(1, 20));
  EXPECT_FALSE(h.due(21, 39));
  EXPECT_TRUE(h.due(21, 40));
  EXPECT_TRUE(h.due(40, 40));
  EXPECT_TRUE(h.due(31, 45));  // a drain at an evaluation or checkpoint step
  EXPECT_FALSE(h.due(41, 60)) << "a run resumed past K does not hold again";
  EXPECT_FALSE(StepHold().due(1, 1000)) << "no variable, no hold";
}

TEST(StepHold, NamesTheRunStepAndVariable) {
  EXPECT_EQ(StepHold(7).message("b32_lr0.05_s1"),
            "[b32_lr0.05_s1] holding at step 7 until a stop signal (BATCHSCOPE_HOLD_AT_STEP)");
}

TEST(StepHold, WaitEndsWithAStopSignal) {
  install_stop_handlers();
  set_stop_signal_for_testing(0);
  int polls = 0;
  std::thread signaller([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    kill(getpid(), SIGUSR1);
  });
  StepHold::wait_for_stop_signal([&] { ++polls; });
  signaller.join();
  EXPECT_EQ(stop_signal(), SIGUSR1);
  EXPECT_GE(polls, 2) << "it polled while waiting";
  polls = 0;
  StepHold::wait_for_stop_signal([&] { ++polls; });
  EXPECT_EQ(polls, 0) << "a signal that already arrived ends the wait at once";
  set_stop_signal_for_testing(0);
}

}  // namespace
}  // namespace bs
