#include "util/signals.h"

#include <csignal>

namespace bs {
namespace {
volatile std::sig_atomic_t g_stop_signal = 0;  // written only by the handler (or tests)

extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }
}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // MPI calls in progress carry on
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
}

int stop_signal() { return g_stop_signal; }

void set_stop_signal_for_testing(int sig) { g_stop_signal = sig; }

}  // namespace bs
