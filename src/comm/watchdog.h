#pragma once
// The waiting loop of asynchronous collectives (NCCL), apart from NCCL so it
// can be tested without a GPU: poll until the operation is done, stop at once
// on an error the library reports, and give up after a timeout, so a dead or
// hung peer ends in an exception naming the operation instead of a hang.
#include <functional>
#include <string>

namespace bs {

struct WatchOptions {
  double timeout_s = 300;
  // Sleep between polls, doubling from poll_s up to poll_max_s: a wait that
  // ends soon is noticed within microseconds, and a long one (a slow peer, a
  // big step) costs no spinning core; the extra latency stays under the time
  // already waited, and under poll_max_s.
  double poll_s = 20e-6;
  double poll_max_s = 1e-3;
};

// done(): has the operation finished? error(): the library's asynchronous
// error, or "" when none. fail(why) must throw (it aborts the communicator and
// raises LibraryError); watch throws std::logic_error if it returns.
void watch(const std::function<bool()>& done, const std::function<std::string()>& error,
           const std::function<void(const std::string&)>& fail, const WatchOptions& options);

}  // namespace bs
