#include "comm/watchdog.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <thread>

namespace bs {

void watch(const std::function<bool()>& done, const std::function<std::string()>& error,
           const std::function<void(const std::string&)>& fail, const WatchOptions& o) {
  using Clock = std::chrono::steady_clock;
  auto give_up = [&](const std::string& why) {
    fail(why);
    throw std::logic_error("watch: fail() returned instead of throwing: " + why);
  };
  const auto t0 = Clock::now();
  double sleep_s = o.poll_s;
  for (;;) {
    if (done()) return;
    // The error check comes before the timeout: a peer that died is reported
    // as what NCCL saw, not as a timeout.
    const std::string why = error();
    if (!why.empty()) give_up(why);
    const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
    if (waited > o.timeout_s)
      give_up("not finished after " + std::to_string(static_cast<int>(o.timeout_s)) +
              " s: a peer rank of the group never reached it (dead, hung, or at a different step); raise "
              "comm_timeout_s if a step can really take this long");
    std::this_thread::sleep_for(std::chrono::duration<double>(sleep_s));
    sleep_s = std::min(2 * sleep_s, std::max(o.poll_s, o.poll_max_s));
  }
}

}  // namespace bs
