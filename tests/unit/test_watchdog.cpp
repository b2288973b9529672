// watch(): the waiting loop behind the NCCL communicator, tested without NCCL.
#include <stdexcept>

#include <gtest/gtest.h>

#include "comm/watchdog.h"

namespace bs {
namespace {

struct Failed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

WatchOptions quick(double timeout_s) {
  WatchOptions o;
  o.timeout_s = timeout_s;
  o.poll_s = 1e-4;
  return o;
}

auto thrower = [](const std::string& why) { throw Failed(why); };

TEST(Watchdog, ReturnsOnceDone) {
  int polls = 0;
  watch([&] { return ++polls == 5; }, [] { return std::string(); }, thrower, quick(60));
  EXPECT_EQ(polls, 5);
}

TEST(Watchdog, DoneWinsOverALateError) {
  // A finished operation is finished even if the library would report an
  // error later: only waiting operations are failed.
  watch([] { return true; }, [] { return std::string("remote process exited"); }, thrower, quick(60));
}

TEST(Watchdog, ReportsTheLibrarysErrorAtOnce) {
  int polls = 0;
  try {
    watch(
        [&] {
          ++polls;
          return false;
        },
        [&] { return polls >= 3 ? std::string("unhandled system error") : ""; }, thrower, quick(60));
    FAIL() << "expected the error to be reported";
  } catch (const Failed& e) {
    EXPECT_STREQ(e.what(), "unhandled system error");
    EXPECT_EQ(polls, 3);  // not after a timeout of 60 s
  }
}

TEST(Watchdog, HungPeerTimesOutWithAMessageNotAHang) {
  int polls = 0;
  try {
    watch(
        [&] {
          ++polls;
          return false;
        },
        [] { return std::string(); }, thrower, quick(0.05));
    FAIL() << "expected a timeout";
  } catch (const Failed& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("not finished after 0 s"), std::string::npos) << m;
    EXPECT_NE(m.find("a peer rank of the group never reached it"), std::string::npos) << m;
    EXPECT_NE(m.find("comm_timeout_s"), std::string::npos) << m;
    EXPECT_GT(polls, 1);
  }
}

TEST(Watchdog, AFailThatReturnsIsABug) {
  EXPECT_THROW(watch([] { return false; }, [] { return std::string("x"); }, [](const std::string&) {}, quick(1)),
               std::logic_error);
}

}  // namespace
}  // namespace bs
