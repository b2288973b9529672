#pragma once
// SIGTERM / SIGUSR1 (a scheduler's time limit or preemption) ask the job to
// stop at the next safe point: finish the step, checkpoint, exit 75. The flag
// is process-global because a signal handler can touch nothing else safely.
namespace bs {

void install_stop_handlers();
// The signal that asked us to stop, or 0.
int stop_signal();
// Tests only: pretend a signal arrived (or clear it with 0).
void set_stop_signal_for_testing(int sig);

}  // namespace bs
